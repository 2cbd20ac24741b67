/**
 * Whether a fleet's GPU request can ever be met, before anything is launched. Pure.
 *
 * A rollout that waits for GPUs the provider does not have waits until its timeout (120 minutes
 * by default) for nothing. Two requests can never be met, whatever is freed:
 *   - one replica needs more GPUs than the provider has in all
 *     (`L4:2` on a 1-GPU machine: "each replica needs 2 GPU(s); the provider has 1 in all");
 *   - the service's steady state needs more than the provider has in all
 *     (3 replicas × `A100:2` on 4 GPUs: "3 replica(s) × 2 GPU(s) = 6 GPU(s); the provider has 4").
 * Anything else fits once old replicas go (the planner waits for them within max_unavailable).
 *
 * `totalGpus` null: the provider does not count GPUs (no inventory: nothing is enforced).
 */
export function gpuShortfall(input: { replicas: number; gpusPerReplica: number; totalGpus: number | null }): string | undefined {
  const { replicas, gpusPerReplica, totalGpus } = input;
  if (totalGpus === null || gpusPerReplica === 0) return undefined;
  if (gpusPerReplica > totalGpus) return `each replica needs ${gpusPerReplica} GPU(s); the provider has ${totalGpus} in all`;
  const need = replicas * gpusPerReplica;
  if (need > totalGpus) return `${replicas} replica(s) × ${gpusPerReplica} GPU(s) = ${need} GPU(s); the provider has ${totalGpus} in all`;
  return undefined;
}
