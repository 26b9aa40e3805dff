#pragma once
// Result<T>: expected failures as values. Modelled on Ray's StatusOr and ccache's tl::expected.

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace rtenv {

/// What kind of failure an Error is. Callers retry only the retryable ones (see Error::retryable).
enum class ErrorCode {
  kInvalidArgument,  ///< bad spec, bad flag, bad input: the user must change something
  kNotFound,         ///< a path, blob or package does not exist
  kAlreadyExists,
  kCorrupt,      ///< content does not match its digest, or a format is malformed
  kUnsafe,       ///< input tries to escape its root (zip slip, escaping symlink)
  kTooLarge,     ///< over a configured limit
  kUnsupported,  ///< recognised but not implemented yet
  kIo,           ///< a filesystem or system call failed
  kUnavailable,  ///< retryable: a server or store did not answer, connection lost, 5xx
  kTimeout,      ///< retryable: a deadline passed
  kInternal,     ///< a bug
};

/// An expected failure: one sentence a person can act on, plus the code that tells callers
/// whether retrying can help.
class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  bool retryable() const {
    return code_ == ErrorCode::kUnavailable || code_ == ErrorCode::kTimeout;
  }

  /// Returns a copy whose message is prefixed with `context: ` (e.g. the step or the path).
  Error with_context(const std::string& context) const {
    return Error(code_, context + ": " + message_);
  }

 private:
  ErrorCode code_;
  std::string message_;
};

template <typename... Args>
Error make_error(ErrorCode code, fmt::format_string<Args...> f, Args&&... args) {
  return Error(code, fmt::format(f, std::forward<Args>(args)...));
}

/// Either a value or an Error. Accessing the wrong side is a bug (asserted).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& {
    assert(!ok());
    return std::get<1>(v_);
  }
  Error&& error() && {
    assert(!ok());
    return std::get<1>(std::move(v_));
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : e_(std::move(error)) {}  // NOLINT

  bool ok() const { return !e_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const& {
    assert(!ok());
    return *e_;
  }
  Error&& error() && {
    assert(!ok());
    return std::move(*e_);
  }

 private:
  std::optional<Error> e_;
};

inline Result<void> ok_result() { return Result<void>(); }

}  // namespace rtenv

#define RTENV_CONCAT_INNER(a, b) a##b
#define RTENV_CONCAT(a, b) RTENV_CONCAT_INNER(a, b)

/// Evaluates `expr` (a Result<void> or Result<T>); returns its Error from the enclosing function.
#define RTENV_TRY(expr)                                                       \
  do {                                                                        \
    auto&& rtenv_try_result_ = (expr);                                        \
    if (!rtenv_try_result_.ok()) return std::move(rtenv_try_result_).error(); \
  } while (0)

#define RTENV_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return std::move(tmp).error();     \
  lhs = std::move(tmp).value()

/// `RTENV_ASSIGN_OR_RETURN(auto x, f());` declares x from f()'s value or returns its Error.
#define RTENV_ASSIGN_OR_RETURN(lhs, expr) \
  RTENV_ASSIGN_OR_RETURN_IMPL(RTENV_CONCAT(rtenv_result_, __LINE__), lhs, expr)
