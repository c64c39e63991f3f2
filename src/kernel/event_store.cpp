#include <oe/kernel/event_store.hpp>

#include <fmt/format.h>

namespace oe {

CorruptEvent::CorruptEvent(std::int64_t position, const std::string& why)
    : StoreError(fmt::format("event at global position {} is corrupt: {}", position, why)),
      position_(position) {}

}  // namespace oe
