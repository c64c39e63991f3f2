#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace oe {

/// Limits every backend enforces before anything is written.
namespace limits {
inline constexpr std::size_t event_payload_bytes_max = 1024 * 1024;  // data + metadata, per event
inline constexpr std::size_t stream_id_bytes_max = 255;
inline constexpr std::size_t event_type_bytes_max = 128;
inline constexpr std::size_t append_events_max = 10'000;           // per append call, all streams
inline constexpr std::size_t append_bytes_max = 16 * 1024 * 1024;  // per append call
inline constexpr std::size_t metadata_field_bytes_max = 255;       // each EventMetadata field
}  // namespace limits

/// Who did what, on whose behalf, as part of which request (SPEC §3). Empty strings are
/// stored as JSON null.
struct EventMetadata {
    std::string actor;
    std::string on_behalf_of;
    std::string trace_id;
    std::string correlation_id;
    std::string causation_id;
    std::string idempotency_key;

    /// The canonical JSON object, keys in SPEC order.
    [[nodiscard]] std::string to_json() const;
    /// Parses what to_json wrote. Throws CorruptEvent-free std::invalid_argument on bad input.
    [[nodiscard]] static EventMetadata from_json(std::string_view json);

    bool operator==(const EventMetadata&) const = default;
};

/// An event about to be appended. `data` is a JSON object in text form.
struct NewEvent {
    std::string type;
    std::uint16_t schema_version = 1;
    std::string data;
    EventMetadata metadata;
};

/// An event as stored. `data` and `metadata` are the JSON text exactly as written (after
/// upcasting, for `data`).
struct RecordedEvent {
    std::int64_t global_position = 0;  // Strictly increasing, starts at 1, never skipped.
    std::string stream_id;
    std::int64_t stream_version = 0;  // 1-based per stream.
    std::string type;
    std::uint16_t schema_version = 1;
    std::string data;
    std::string metadata;
    std::int64_t recorded_at_us = 0;  // Microseconds since the Unix epoch, UTC.

    bool operator==(const RecordedEvent&) const = default;
};

/// What the writer believes the stream's version to be.
class ExpectedVersion {
  public:
    /// Append whatever the stream's version.
    static constexpr ExpectedVersion any() { return ExpectedVersion{any_value}; }
    /// The stream must not exist yet.
    static constexpr ExpectedVersion no_stream() { return ExpectedVersion{0}; }
    /// The stream's last event must have this version (>= 1).
    static constexpr ExpectedVersion exact(std::int64_t version) {
        return ExpectedVersion{version};
    }

    [[nodiscard]] constexpr bool is_any() const { return value_ == any_value; }
    [[nodiscard]] constexpr bool matches(std::int64_t actual) const {
        return is_any() || value_ == actual;
    }
    /// -1 for any, 0 for no stream, N for exactly N (the wire encoding of both backends).
    [[nodiscard]] constexpr std::int64_t encoded() const { return value_; }
    [[nodiscard]] std::string describe() const;

    bool operator==(const ExpectedVersion&) const = default;

  private:
    static constexpr std::int64_t any_value = -1;
    constexpr explicit ExpectedVersion(std::int64_t value) : value_(value) {}
    std::int64_t value_;
};

/// Events for one stream within an append.
struct StreamAppend {
    std::string stream_id;
    ExpectedVersion expected = ExpectedVersion::any();
    std::vector<NewEvent> events;
};

/// A successful append: positions of the first and last event written and each stream's new
/// version, in the order the streams were given.
struct AppendResult {
    std::int64_t first_position = 0;
    std::int64_t last_position = 0;
    std::vector<std::int64_t> stream_versions;
};

/// Why an append wrote nothing. Values are stable; never renumber.
enum class AppendRejected : std::uint8_t {
    wrong_expected_version = 1,
    payload_too_large = 2,
    invalid_event = 3,
};

struct AppendError {
    AppendRejected reason = AppendRejected::invalid_event;
    std::string stream_id;      // The stream that failed the check, when there is one.
    std::int64_t expected = 0;  // Encoded ExpectedVersion, for wrong_expected_version.
    std::int64_t actual = 0;    // The stream's version at the time of the check.
    std::string message;
};

/// Validates an append before any I/O: non-empty, unique stream ids, sizes within limits,
/// data a JSON object. Returns the error, or nothing when the append may go to the backend.
[[nodiscard]] std::optional<AppendError> validate_append(const std::vector<StreamAppend>& streams);

}  // namespace oe
