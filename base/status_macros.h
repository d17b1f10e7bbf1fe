// Early-return helpers for absl::Status and absl::StatusOr<T>.
//
//   LORA_RETURN_IF_ERROR(store->Put(run));
//   LORA_ASSIGN_OR_RETURN(std::unique_ptr<Db> db, Db::Open(options));
//
// Both evaluate their argument exactly once and return the error status
// unchanged from the enclosing function, which must return absl::Status or
// absl::StatusOr<U>.
#ifndef LORA_SWEEP_BASE_STATUS_MACROS_H_
#define LORA_SWEEP_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LORA_RETURN_IF_ERROR(expr)               \
  do {                                           \
    const ::absl::Status lora_status_ = (expr);  \
    if (!lora_status_.ok()) return lora_status_; \
  } while (false)

#define LORA_STATUS_MACROS_CONCAT_INNER_(x, y) x##y
#define LORA_STATUS_MACROS_CONCAT_(x, y) LORA_STATUS_MACROS_CONCAT_INNER_(x, y)

#define LORA_ASSIGN_OR_RETURN(lhs, rexpr) \
  LORA_ASSIGN_OR_RETURN_IMPL_(            \
      LORA_STATUS_MACROS_CONCAT_(lora_statusor_, __LINE__), lhs, rexpr)

#define LORA_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr)  \
  auto statusor = (rexpr);                                 \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = *std::move(statusor)

#endif  // LORA_SWEEP_BASE_STATUS_MACROS_H_
