#pragma once

#include <pthread.h>

#include <string>
#include <string_view>

namespace oe {

/// Names the calling thread as `top -H`, `ps -L`, perf and debuggers show it (Linux keeps the
/// first 15 bytes), so the engine's own threads can be told apart from checkout's.
inline void name_this_thread(std::string_view name) {
    const std::string truncated(name.substr(0, 15));
    (void)pthread_setname_np(pthread_self(), truncated.c_str());
}

}  // namespace oe
