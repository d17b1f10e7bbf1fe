// How a worker's jobs share its CPU cores. Each job is a lora-train child
// whose OpenMP threads, by default, spin while they wait for work: the
// fastest choice when every job has cores to itself, and a collapse when
// the jobs' threads outnumber the cores (two 2-thread jobs on 2 cores each
// train at 0.24x of one job alone; with waiting threads asleep, at 0.56x:
// BENCHMARKS.md, "Jobs sharing cores"). No LibTorch here.
#ifndef LORA_SWEEP_WORKER_CPU_BUDGET_H_
#define LORA_SWEEP_WORKER_CPU_BUDGET_H_

#include <cstdint>
#include <string>

namespace lora::worker {

// True when `max_jobs` jobs of `threads_per_job` threads each need more
// threads than there are `cores`. Unknown core counts (cores <= 0) and
// non-positive job or thread counts are never oversubscribed.
bool Oversubscribed(int64_t max_jobs, int64_t threads_per_job, int64_t cores);

// The OMP_WAIT_POLICY to give the children: "PASSIVE" (waiting threads
// sleep) when oversubscribed; "" (leave OpenMP's default, which spins and
// is 10-20% faster for a job with cores to itself) otherwise.
std::string ChildOmpWaitPolicy(int64_t max_jobs, int64_t threads_per_job,
                               int64_t cores);

}  // namespace lora::worker

#endif  // LORA_SWEEP_WORKER_CPU_BUDGET_H_
