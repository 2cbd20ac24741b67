import { allocateGpus, detectGpus, parseGpuIndices } from '../../src/providers/gpu-inventory';

describe('parseGpuIndices', () => {
  it.each([
    { name: 'two GPUs', output: '0\n1\n', expected: [0, 1] },
    { name: 'CRLF and blanks', output: '1\r\n\r\n0\r\n', expected: [0, 1] },
    { name: 'no GPU', output: '', expected: [] },
    { name: 'warning lines are skipped', output: 'No devices were found\n', expected: [] },
  ])('$name', ({ output, expected }) => {
    expect(parseGpuIndices(output)).toEqual(expected);
  });
});

describe('allocateGpus', () => {
  it.each([
    { name: 'lowest free first', total: [0, 1, 2, 3], held: [[1]], count: 2, expected: [0, 2] },
    { name: 'nothing held', total: [0, 1], held: [], count: 1, expected: [0] },
    { name: 'zero requested', total: [0, 1], held: [[0, 1]], count: 0, expected: [] },
    { name: 'exactly what is free', total: [0, 1, 2], held: [[0], [2]], count: 1, expected: [1] },
    { name: 'not enough free', total: [0, 1], held: [[0]], count: 2, expected: undefined },
    { name: 'more than the host has', total: [0, 1], held: [], count: 3, expected: undefined },
    { name: 'no GPU at all', total: [], held: [], count: 1, expected: undefined },
    { name: 'held indices outside the inventory are ignored', total: [0, 1], held: [[5]], count: 2, expected: [0, 1] },
  ])('$name', ({ total, held, count, expected }) => {
    expect(allocateGpus(total, held, count)).toEqual(expected);
  });
});

describe('detectGpus', () => {
  it('answers a list of indices (empty where nvidia-smi is missing) without throwing', async () => {
    const gpus = await detectGpus();
    expect(Array.isArray(gpus)).toBe(true);
    gpus.forEach((index) => expect(Number.isInteger(index)).toBe(true));
  });
});
