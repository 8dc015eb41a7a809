// Internal helpers shared by the native sources: error reporting and the guard
// that turns every C++ exception into a status at the boundary.
#pragma once
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include "rc_api.h"

namespace rc {

void set_last_error(const std::string& message);

// The instruction set the kernels run with now (after rc_set_isa and the CPU's features).
rc_isa current_isa();

// Runs body and maps any exception to a status, keeping its message for rc_last_error.
template <class Body>
rc_status guard(Body&& body) noexcept {
  try {
    body();
    return RC_OK;
  } catch (const std::invalid_argument& e) {
    set_last_error(e.what());
    return RC_INVALID_ARGUMENT;
  } catch (const std::bad_alloc&) {
    set_last_error("out of memory");
    return RC_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    set_last_error(e.what());
    return RC_INTERNAL;
  } catch (...) {
    set_last_error("unknown native error");
    return RC_INTERNAL;
  }
}

}  // namespace rc
