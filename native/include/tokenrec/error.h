// Typed errors of the core. Core code never calls exit/abort: it throws tokenrec::Error, and
// the Node binding turns it into a JS Error whose `code` is the string from code_name().
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace tokenrec {

enum class ErrorCode { InvalidArgument, OutOfRange, NotFinite, Io, Cuda, Internal };

inline const char* code_name(ErrorCode c) {
  switch (c) {
    case ErrorCode::InvalidArgument: return "ERR_TOKENREC_INVALID_ARGUMENT";
    case ErrorCode::OutOfRange: return "ERR_TOKENREC_OUT_OF_RANGE";
    case ErrorCode::NotFinite: return "ERR_TOKENREC_NOT_FINITE";
    case ErrorCode::Io: return "ERR_TOKENREC_IO";
    case ErrorCode::Cuda: return "ERR_TOKENREC_CUDA";
    default: return "ERR_TOKENREC_INTERNAL";
  }
}

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// Builds a message from streamable parts: fail(ErrorCode::OutOfRange, "targets[", i, "] = ", v).
template <typename... Parts>
[[noreturn]] void fail(ErrorCode code, const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(code, os.str());
}

template <typename... Parts>
inline void require(bool ok, const Parts&... parts) {
  if (!ok) fail(ErrorCode::InvalidArgument, parts...);
}

}  // namespace tokenrec
