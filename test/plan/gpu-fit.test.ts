/** gpuShortfall: GPU requests that can never be met are found before anything launches. */
import fc from 'fast-check';
import { gpuShortfall } from '../../src/plan/gpu-fit';

describe('gpuShortfall', () => {
  test.each([
    { name: 'no inventory: nothing enforced', replicas: 4, gpusPerReplica: 8, totalGpus: null, expected: undefined },
    { name: 'no GPU asked for', replicas: 4, gpusPerReplica: 0, totalGpus: 0, expected: undefined },
    { name: 'L4:1 with --gpus 0', replicas: 1, gpusPerReplica: 1, totalGpus: 0, expected: 'each replica needs 1 GPU(s); the provider has 0 in all' },
    { name: 'one replica larger than the machine', replicas: 1, gpusPerReplica: 2, totalGpus: 1, expected: 'each replica needs 2 GPU(s); the provider has 1 in all' },
    { name: 'steady state larger than the machine', replicas: 3, gpusPerReplica: 2, totalGpus: 4, expected: '3 replica(s) × 2 GPU(s) = 6 GPU(s); the provider has 4 in all' },
    { name: 'exactly the machine (surge waits for old replicas)', replicas: 2, gpusPerReplica: 2, totalGpus: 4, expected: undefined },
    { name: 'room to spare', replicas: 2, gpusPerReplica: 1, totalGpus: 8, expected: undefined },
  ])('$name', ({ replicas, gpusPerReplica, totalGpus, expected }) => {
    expect(gpuShortfall({ replicas, gpusPerReplica, totalGpus })).toBe(expected);
  });

  test('property: a shortfall exactly when the steady state cannot fit', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 0, max: 16 }), fc.option(fc.integer({ min: 0, max: 64 }), { nil: null }), (replicas, gpusPerReplica, totalGpus) => {
        const found = gpuShortfall({ replicas, gpusPerReplica, totalGpus });
        const fits = totalGpus === null || replicas * gpusPerReplica <= totalGpus;
        expect(found === undefined).toBe(fits);
      }),
    );
  });
});
