#include "worker/cpu_budget.h"

namespace lora::worker {

bool Oversubscribed(int64_t max_jobs, int64_t threads_per_job, int64_t cores) {
  if (cores <= 0 || max_jobs <= 0 || threads_per_job <= 0) return false;
  return max_jobs * threads_per_job > cores;
}

std::string ChildOmpWaitPolicy(int64_t max_jobs, int64_t threads_per_job,
                               int64_t cores) {
  return Oversubscribed(max_jobs, threads_per_job, cores) ? "PASSIVE" : "";
}

}  // namespace lora::worker
