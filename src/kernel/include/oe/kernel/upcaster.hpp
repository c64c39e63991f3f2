#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include <oe/kernel/event.hpp>

namespace oe {

/// Turns stored events of old shapes into the current shape on read; stored rows are never
/// rewritten. An upcaster lifts one type from schema_version N to N + 1; chains run in order.
class UpcasterRegistry {
  public:
    /// Takes the old `data` JSON text and returns the next version's `data` JSON text.
    /// Throws std::exception when the old data cannot be converted (the read then reports the
    /// event as corrupt).
    using Upcast = std::function<std::string(std::string_view data)>;

    /// Registers the step from `from_version` to `from_version + 1` for `type`.
    void add(std::string type, std::uint16_t from_version, Upcast upcast);

    /// Lifts `event` to the newest registered version of its type, in place.
    /// Throws CorruptEvent when an upcaster fails.
    void upcast(RecordedEvent& event) const;

    [[nodiscard]] bool empty() const noexcept { return steps_.empty(); }

  private:
    std::map<std::pair<std::string, std::uint16_t>, Upcast, std::less<>> steps_;
};

}  // namespace oe
