#include <atomic>
#include <thread>

#include <doctest/doctest.h>

#include <oe/kernel/event.hpp>
#include <oe/kernel/event_store.hpp>
#include <oe/kernel/group_commit.hpp>
#include <oe/kernel/json_text.hpp>
#include <oe/kernel/result.hpp>
#include <oe/kernel/time.hpp>
#include <oe/kernel/upcaster.hpp>

using namespace oe;

TEST_SUITE("kernel") {
    TEST_CASE("time: ISO 8601 formatting always has six fraction digits and a Z") {
        CHECK(format_iso8601_us(0) == "1970-01-01T00:00:00.000000Z");
        CHECK(format_iso8601_us(1'795'677'457'123'456) == "2026-11-26T07:17:37.123456Z");
        CHECK(format_iso8601_us(-1) == "1969-12-31T23:59:59.999999Z");
        CHECK(format_iso8601_us(253'402'300'799'999'999) == "9999-12-31T23:59:59.999999Z");
        CHECK(format_iso8601_us(253'402'300'800'000'000) == "10000-01-01T00:00:00.000000Z");
        CHECK(format_iso8601_us(-62'167'219'200'000'001) == "-001-12-31T23:59:59.999999Z");
    }

    TEST_CASE("time: parsing accepts UTC forms and rejects everything else") {
        CHECK(parse_iso8601_us("2026-11-26T07:17:37.123456Z") == 1'795'677'457'123'456);
        CHECK(parse_iso8601_us("2026-11-26T07:17:37Z") == 1'795'677'457'000'000);
        CHECK(parse_iso8601_us("2026-11-26T07:17:37.5Z") == 1'795'677'457'500'000);
        CHECK(parse_iso8601_us("2026-11-26 07:17:37.123456+00") == 1'795'677'457'123'456);
        CHECK(parse_iso8601_us("2026-11-26T07:17:37+00:00") == 1'795'677'457'000'000);
        CHECK(parse_iso8601_us("2026-11-26") == 1'795'651'200'000'000);
        CHECK_FALSE(parse_iso8601_us(""));
        CHECK_FALSE(parse_iso8601_us("yesterday"));
        CHECK_FALSE(parse_iso8601_us("2026-02-30T00:00:00Z"));
        CHECK_FALSE(parse_iso8601_us("2026-11-26T25:00:00Z"));
        CHECK_FALSE(parse_iso8601_us("2026-11-26T07:17:37+07:00"));
        CHECK_FALSE(parse_iso8601_us("2026-11-26T07:17:37.Z"));
        CHECK_FALSE(parse_iso8601_us("2026-11-26T07:17:37Zjunk"));
        for (const std::int64_t us : {0LL, 1LL, 999'999LL, 1'795'677'457'123'456LL}) {
            CHECK(parse_iso8601_us(format_iso8601_us(us)) == us);
        }
    }

    TEST_CASE("json: strings are escaped per RFC 8259") {
        std::string out;
        append_json_string(out, "a\"b\\c\nd\x01");
        CHECK(out == R"("a\"b\\c\nd\u0001")");
    }

    TEST_CASE("json: only a single well-formed object counts as event data") {
        CHECK(is_json_object(R"({"a":[1,2,{"b":null}]})"));
        CHECK(is_json_object(" {} "));
        CHECK_FALSE(is_json_object(""));
        CHECK_FALSE(is_json_object("[]"));
        CHECK_FALSE(is_json_object("42"));
        CHECK_FALSE(is_json_object(R"({"a":1}{"b":2})"));
        CHECK_FALSE(is_json_object(R"({"a":)"));
        CHECK_FALSE(is_json_object(std::string(100, '[') + std::string(100, ']')));
    }

    TEST_CASE("metadata: JSON round trip, empty fields as null") {
        EventMetadata m{"agent-1", "P-9", "t", "", "c", "k"};
        const auto json = m.to_json();
        CHECK(json.find(R"("correlation_id":null)") != std::string::npos);
        CHECK(EventMetadata::from_json(json) == m);
        CHECK_THROWS_AS((void)EventMetadata::from_json("[]"), std::invalid_argument);
        CHECK_THROWS_AS((void)EventMetadata::from_json(R"({"actor":5})"), std::invalid_argument);
    }

    TEST_CASE("result: value or error, and misuse is an invariant violation") {
        Result<int, std::string> good = 5;
        Result<int, std::string> bad = std::string("no");
        CHECK(good.ok());
        CHECK(good.value() == 5);
        CHECK_FALSE(bad.ok());
        CHECK(bad.error() == "no");
        CHECK_THROWS_AS((void)bad.value(), InvariantViolation);
    }

    TEST_CASE("upcaster: chains steps and leaves unknown types alone") {
        UpcasterRegistry registry;
        registry.add("A", 1, [](std::string_view) { return std::string(R"({"v":2})"); });
        registry.add("A", 2, [](std::string_view) { return std::string(R"({"v":3})"); });
        RecordedEvent a{1, "s", 1, "A", 1, R"({"v":1})", "{}", 0};
        registry.upcast(a);
        CHECK(a.schema_version == 3);
        CHECK(a.data == R"({"v":3})");
        RecordedEvent b{2, "s", 2, "B", 1, R"({"v":1})", "{}", 0};
        registry.upcast(b);
        CHECK(b.schema_version == 1);
        registry.add("C", 1, [](std::string_view) { return std::string("not json"); });
        RecordedEvent c{3, "s", 3, "C", 1, "{}", "{}", 0};
        CHECK_THROWS_AS(registry.upcast(c), CorruptEvent);
    }

    TEST_CASE("group commit: concurrent submitters share batches and each gets its own result") {
        std::atomic<int> batches{0};
        std::atomic<int> largest{0};
        std::int64_t head = 0;  // Only the leader touches it.
        GroupCommitter committer(
            [&](std::vector<PendingAppend*>& batch) {
                ++batches;
                largest = std::max(largest.load(), static_cast<int>(batch.size()));
                std::this_thread::sleep_for(std::chrono::microseconds(300));  // A "flush".
                for (auto* pending : batch) {
                    if (pending->streams.front().stream_id == "bad") {
                        AppendError error;
                        error.reason = AppendRejected::wrong_expected_version;
                        pending->result.emplace(error);
                    } else {
                        AppendResult r;
                        r.first_position = head + 1;
                        head += static_cast<std::int64_t>(pending->event_count);
                        r.last_position = head;
                        pending->result.emplace(r);
                    }
                }
            },
            /*batch_events_max=*/64);
        constexpr int threads = 8;
        constexpr int per_thread = 200;
        std::atomic<int> ok{0};
        std::atomic<int> rejected{0};
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                for (int i = 0; i < per_thread; ++i) {
                    NewEvent e{"E", 1, "{}", {}};
                    auto r = committer.submit({StreamAppend{
                        (t + i) % 10 == 0 ? "bad" : "good", ExpectedVersion::any(), {e}}});
                    (r.ok() ? ok : rejected)++;
                }
            });
        }
        for (auto& w : workers) {
            w.join();
        }
        CHECK(ok + rejected == threads * per_thread);
        CHECK(rejected.load() == threads * per_thread / 10);
        CHECK(head == ok.load());
        CHECK(batches.load() < threads * per_thread);  // Flushes were shared.
        CHECK(largest.load() > 1);
    }

    TEST_CASE("group commit: a failed batch throws to every caller in it, and the next one works") {
        bool fail = true;
        GroupCommitter committer(
            [&](std::vector<PendingAppend*>& batch) {
                if (fail) {
                    throw StoreError("disk on fire");
                }
                for (auto* pending : batch) {
                    pending->result.emplace(AppendResult{1, 1, {1}});
                }
            },
            10);
        NewEvent e{"E", 1, "{}", {}};
        CHECK_THROWS_AS((void)committer.submit({StreamAppend{"s", ExpectedVersion::any(), {e}}}),
                        StoreError);
        fail = false;
        CHECK(committer.submit({StreamAppend{"s", ExpectedVersion::any(), {e}}}).ok());
    }

}  // TEST_SUITE

#include <oe/kernel/metrics.hpp>

TEST_SUITE("kernel") {
    TEST_CASE("metrics: Prometheus text with escaped labels, cumulative buckets, live gauges") {
        metrics::Registry registry;
        registry.counter("orders_placed_total", "Orders placed", {{"status", "placed"}}).inc(3);
        registry.counter("orders_placed_total", "Orders placed", {{"status", "credit_hold"}}).inc();
        registry.counter("orders_placed_total", "Orders placed", {{"status", "placed"}}).inc();
        auto& latency = registry.histogram("lead_routing_latency_ms", "Routing", {1, 5, 10});
        latency.observe(0.5);
        latency.observe(5);
        latency.observe(50);
        int reads = 0;
        registry.gauge_callback("erp_outbox_pending", "Queue", {{"q", "a\"b\\c"}}, [&] {
            ++reads;
            return 7.0;
        });
        const std::string text = registry.render();
        CHECK(text.find("# TYPE orders_placed_total counter\n") != std::string::npos);
        CHECK(text.find("orders_placed_total{status=\"placed\"} 4\n") != std::string::npos);
        CHECK(text.find("orders_placed_total{status=\"credit_hold\"} 1\n") != std::string::npos);
        CHECK(text.find("lead_routing_latency_ms_bucket{le=\"1\"} 1\n") != std::string::npos);
        CHECK(text.find("lead_routing_latency_ms_bucket{le=\"5\"} 2\n") != std::string::npos);
        CHECK(text.find("lead_routing_latency_ms_bucket{le=\"+Inf\"} 3\n") != std::string::npos);
        CHECK(text.find("lead_routing_latency_ms_sum 55.5\n") != std::string::npos);
        CHECK(text.find("lead_routing_latency_ms_count 3\n") != std::string::npos);
        CHECK(text.find("erp_outbox_pending{q=\"a\\\"b\\\\c\"} 7\n") != std::string::npos);
        CHECK(reads == 1);
        CHECK_THROWS_AS((void)registry.counter("no_suffix", "x"), InvariantViolation);
        CHECK_THROWS_AS((void)registry.gauge("orders_placed_total", "x"), InvariantViolation);
    }

}  // TEST_SUITE
