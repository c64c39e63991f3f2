#include <oe/app/erp_worker.hpp>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>

#include <oe/commands/command_service.hpp>
#include <oe/erp/gateway.hpp>
#include <oe/events/events.hpp>
#include <oe/kernel/event_store.hpp>
#include <oe/kernel/log.hpp>
#include <oe/kernel/metrics.hpp>
#include <oe/kernel/thread_name.hpp>
#include <oe/kernel/time.hpp>

namespace oe::app {

namespace {

using Clock = std::chrono::steady_clock;
using events::ErpAction;

constexpr std::string_view projection_name = "erp";
constexpr std::size_t queue_max = 10'000;  // Read ahead no further than this.
constexpr std::size_t read_batch = 1'000;
constexpr std::int64_t default_max_rps_hundredths = 200;
constexpr std::int64_t default_sync_interval_s = 300;
// A failed stock and debt sync is tried again after this, or the interval if shorter.
constexpr std::chrono::seconds sync_retry_after_failure{30};

/// One thing to tell the ERP, from the order event at `position`.
struct Delivery {
    std::int64_t position = 0;
    std::string order_id;
    ErpAction action = ErpAction::create;
    std::int64_t recorded_at_us = 0;
    std::string trace_id;
};

std::string random_trace_id() {
    thread_local std::mt19937_64 random{std::random_device{}()};
    return fmt::format("{:016x}{:016x}", random(), random());
}

/// The delivery an event asks for, if any.
std::optional<Delivery> delivery_of(const RecordedEvent& r) {
    if (r.type != events::OrderRouted::type_name && r.type != events::OrderCancelled::type_name) {
        return std::nullopt;
    }
    auto decoded = events::decode(r);
    if (!decoded.ok()) {
        throw CorruptEvent(r.global_position, decoded.error().message);
    }
    Delivery d;
    d.position = r.global_position;
    d.recorded_at_us = r.recorded_at_us;
    try {
        d.trace_id = EventMetadata::from_json(r.metadata).trace_id;
    } catch (const std::exception&) {
    }
    if (const auto* routed = std::get_if<events::OrderRouted>(&decoded.value())) {
        d.order_id = routed->order_id;
        d.action = ErpAction::create;
        return d;
    }
    const auto& cancelled = std::get<events::OrderCancelled>(decoded.value());
    if (cancelled.previous_status != events::OrderStatus::sent_to_erp) {
        return std::nullopt;  // The ERP never had it (a queued create will see it cancelled).
    }
    d.order_id = cancelled.order_id;
    d.action = ErpAction::cancel;
    return d;
}

}  // namespace

struct ErpWorker::Impl {
    enum class Outcome { delivered, parked, stopped };

    EventStore& store;
    commands::CommandService& commands;
    erp::ErpGateway& gateway;
    ConfigReader config;
    metrics::Registry& metrics;
    ErpWorkerOptions options;

    std::atomic<bool> stopping{false};
    std::atomic<bool> leader{false};
    std::mutex sleep_mutex;
    std::condition_variable sleep_cv;
    std::thread projector_thread;
    std::thread sync_thread;
    std::mutex sync_mutex;  // One sync at a time (the loop and POST /api/admin/erp/sync).

    // Projector state: touched only by the projector thread.
    std::int64_t checkpoint = 0;
    std::int64_t read_position = 0;
    std::deque<Delivery> queue;
    std::map<std::string, std::int64_t> parked_orders;    // Order id -> its open dead letter.
    std::map<std::string, std::deque<Delivery>> blocked;  // Waiting behind a dead letter.
    std::set<std::int64_t> retrying;                      // Dead letters being retried.
    Clock::time_point last_call{};                        // Start of the latest ERP call.
    Clock::time_point last_idle_commit{};
    std::mt19937_64 jitter{std::random_device{}()};

    // What status() reports.
    std::mutex status_mutex;
    std::optional<ErpStatus::LastSync> last_sync;
    std::atomic<std::int64_t> pending{0};
    std::atomic<std::int64_t> committed{0};
    std::atomic<std::uint64_t> delivered{0};

    metrics::Histogram& delivery_latency;

    Impl(EventStore& s, commands::CommandService& c, erp::ErpGateway& g, ConfigReader r,
         metrics::Registry& m, ErpWorkerOptions o)
        : store(s),
          commands(c),
          gateway(g),
          config(std::move(r)),
          metrics(m),
          options(o),
          delivery_latency(
              m.histogram("erp_delivery_latency_seconds",
                          "From an order event's commit to the ERP's answer to its delivery",
                          {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600})) {
        m.gauge_callback("erp_outbox_pending",
                         "Order events waiting for delivery to the ERP (queued, parked as dead "
                         "letters, or waiting behind one)",
                         {}, [this] { return static_cast<double>(pending.load()); });
    }

    // ---- Small helpers.

    /// Sleeps up to `duration`; false when the worker is stopping.
    bool sleep_for(Clock::duration duration) {
        std::unique_lock lock(sleep_mutex);
        sleep_cv.wait_for(lock, duration, [&] { return stopping.load(); });
        return !stopping.load();
    }

    std::int64_t config_or(std::string_view key, std::int64_t fallback) {
        try {
            const auto value = config(key);
            return value > 0 ? value : fallback;
        } catch (const std::exception& e) {
            log(LogLevel::warn, "erp: config unreadable, using the default",
                {{"key", std::string(key)}, {"error", e.what()}});
            return fallback;
        }
    }

    EventMetadata metadata(const Delivery& d, std::string_view actor) const {
        EventMetadata m;
        m.actor = std::string(actor);
        m.trace_id = d.trace_id;
        m.correlation_id = d.trace_id;
        m.causation_id = std::to_string(d.position);
        return m;
    }

    void count(std::string_view outcome) {
        metrics
            .counter("erp_deliveries_total", "ERP projector deliveries by outcome",
                     {{"outcome", std::string(outcome)}})
            .inc();
    }

    void update_pending() {
        std::int64_t n = static_cast<std::int64_t>(queue.size() + parked_orders.size());
        for (const auto& [order, waiting] : blocked) {
            n += static_cast<std::int64_t>(waiting.size());
        }
        pending = n;
    }

    // ---- Lease and loop.

    void run_projector() {
        std::unique_ptr<Lease> lease;
        while (!stopping) {
            try {
                if (!lease) {
                    lease = store.try_lease("erp");
                    if (!lease) {
                        sleep_for(options.lease_retry);
                        continue;
                    }
                    log(LogLevel::info, "erp: this instance runs the ERP projector and the sync");
                    load();
                    leader = true;
                }
                if (!lease->held()) {
                    log(LogLevel::warn, "erp: lease lost; standing by");
                    leader = false;
                    lease.reset();
                    continue;
                }
                step(*lease);
            } catch (const CheckpointConflict& e) {
                log(LogLevel::warn, "erp: checkpoint moved elsewhere; standing by",
                    {{"error", e.what()}});
                leader = false;
                lease.reset();
                sleep_for(options.lease_retry);
            } catch (const std::exception& e) {
                log(LogLevel::error, "erp: projector step failed; retrying", {{"error", e.what()}});
                leader = false;
                lease.reset();  // Reload everything from the store on the next round.
                sleep_for(std::chrono::seconds(1));
            }
        }
        leader = false;
    }

    /// The projector's state from the store: checkpoint, open dead letters, and the
    /// deliveries waiting behind them.
    void load() {
        checkpoint = store.load_checkpoint(projection_name);
        committed = checkpoint;
        read_position = checkpoint;
        queue.clear();
        blocked.clear();
        parked_orders.clear();
        retrying.clear();
        std::int64_t scan_from = checkpoint;
        commands.with_state([&](const model::CommerceState& s) {
            for (const auto& [id, letter] : s.erp_dead_letters()) {
                parked_orders[letter.parked.order_id] = id;
                scan_from = std::min(scan_from, id);
            }
        });
        // Deliveries of parked orders between their dead letter and the checkpoint were
        // passed over (blocked) before a restart: find them again.
        for (std::int64_t at = scan_from; at < checkpoint && !parked_orders.empty();) {
            const auto events = store.read_all(at, read_batch);
            if (events.empty()) {
                break;
            }
            for (const auto& e : events) {
                if (e.global_position > checkpoint) {
                    break;
                }
                at = e.global_position;
                auto d = delivery_of(e);
                if (!d) {
                    continue;
                }
                const auto parked = parked_orders.find(d->order_id);
                if (parked != parked_orders.end() && d->position > parked->second) {
                    blocked[d->order_id].push_back(std::move(*d));
                }
            }
        }
        update_pending();
    }

    void step(Lease& lease) {
        read_ahead();
        update_pending();
        if (auto letter = retry_requested()) {
            retry(*letter, lease);
        } else if (!queue.empty()) {
            deliver_front(lease);
        } else {
            if (Clock::now() - last_idle_commit > std::chrono::seconds(1)) {
                advance_checkpoint();
                last_idle_commit = Clock::now();
            }
            store.wait_for_events(read_position, std::chrono::milliseconds(500), &stopping);
        }
        update_pending();
    }

    void read_ahead() {
        while (queue.size() < queue_max) {
            const auto events = store.read_all(read_position, read_batch);
            for (const auto& e : events) {
                if (auto d = delivery_of(e)) {
                    queue.push_back(std::move(*d));
                }
                read_position = e.global_position;
            }
            if (events.size() < read_batch) {
                break;
            }
        }
    }

    /// The checkpoint may pass everything before the first delivery still queued.
    void advance_checkpoint() {
        const auto target = queue.empty() ? read_position : queue.front().position - 1;
        if (target > checkpoint) {
            store.commit_projection(projection_name, checkpoint, target, [](SqlTx&) {});
            checkpoint = target;
            committed = target;
        }
    }

    // ---- Deliveries.

    void deliver_front(Lease& lease) {
        const Delivery d = queue.front();
        if (parked_orders.count(d.order_id) == 1) {
            blocked[d.order_id].push_back(d);  // Waits behind its order's dead letter.
            queue.pop_front();
            advance_checkpoint();
            return;
        }
        std::string error;
        std::int64_t attempts = 0;
        const auto outcome = deliver(d, lease, attempts, error);
        if (outcome == Outcome::stopped) {
            return;
        }
        if (outcome == Outcome::parked) {
            park(d, attempts, error);
        }
        queue.pop_front();
        advance_checkpoint();
    }

    void park(const Delivery& d, std::int64_t attempts, const std::string& error) {
        auto parked = commands.execute(
            commands::ParkErpDelivery{d.position, d.order_id, d.action, attempts, error},
            metadata(d, "erp-projector"));
        if (!parked.ok()) {
            throw StoreError("parking a dead letter failed: " + parked.error().message);
        }
        parked_orders[d.order_id] = d.position;
        count("parked");
        log(LogLevel::error, "erp: delivery parked as a dead letter",
            {{"trace_id", d.trace_id},
             {"dead_letter_id", std::to_string(d.position)},
             {"order_id", d.order_id},
             {"action", std::string(events::to_string(d.action))},
             {"attempts", std::to_string(attempts)},
             {"error", error}});
    }

    /// Tries until the delivery goes through, is parked, or the worker stops or loses its
    /// lease. `attempts` counts calls that failed for this delivery.
    Outcome deliver(const Delivery& d, Lease& lease, std::int64_t& attempts, std::string& error) {
        int backoff_step = 0;
        std::int64_t counted = 0;
        for (;;) {
            if (stopping || !lease.held()) {
                return Outcome::stopped;
            }
            // While one delivery waits (an outage can last long), keep reading the log so
            // erp_outbox_pending shows the queue growing behind it.
            read_ahead();
            update_pending();
            const auto closed_in = gateway.breaker().wait();
            if (closed_in.count() > 0) {
                sleep_for(std::min<Clock::duration>(closed_in, std::chrono::milliseconds(500)));
                continue;
            }
            if (!throttle()) {
                return Outcome::stopped;
            }
            try {
                attempt(d);
                return Outcome::delivered;
            } catch (const erp::ErpFailure& failure) {
                if (failure.kind() == erp::ErpFailure::Kind::circuit_open) {
                    continue;  // No call was made (another caller holds the probe).
                }
                ++attempts;
                error = failure.what();
                // Only answers that were unusable count towards parking: an ERP that is down
                // as a whole must not turn the whole queue into dead letters.
                if (failure.kind() == erp::ErpFailure::Kind::failed) {
                    ++counted;
                }
                log(LogLevel::warn, "erp: delivery failed",
                    {{"trace_id", d.trace_id},
                     {"order_id", d.order_id},
                     {"action", std::string(events::to_string(d.action))},
                     {"attempt", std::to_string(attempts)},
                     {"kind",
                      failure.kind() == erp::ErpFailure::Kind::failed ? "failed" : "unavailable"},
                     {"error", error}});
                if (counted >= options.dead_letter_after) {
                    attempts = counted;
                    return Outcome::parked;
                }
            }
            // Exponential backoff with jitter: uniform in [delay/2, delay].
            const auto delay =
                std::min(options.retry_cap,
                         options.retry_base * (std::int64_t{1} << std::min(backoff_step, 20)));
            ++backoff_step;
            const auto half = delay.count() / 2;
            const auto jittered =
                std::chrono::milliseconds(half + std::uniform_int_distribution<std::int64_t>(
                                                     0, std::max<std::int64_t>(half, 0))(jitter));
            if (!sleep_for(jittered)) {
                return Outcome::stopped;
            }
        }
    }

    /// Waits for the next call slot under erp.max_rps (read at every call, so a change
    /// applies to the very next one). False when stopping.
    bool throttle() {
        for (;;) {
            const auto hundredths = config_or("erp.max_rps", default_max_rps_hundredths);
            const auto interval =
                std::chrono::microseconds(100'000'000 / std::max<std::int64_t>(hundredths, 1));
            const auto now = Clock::now();
            if (now >= last_call + interval) {
                break;
            }
            // In short slices, so a changed erp.max_rps applies to the very next call.
            if (!sleep_for(std::min<Clock::duration>(last_call + interval - now,
                                                     std::chrono::milliseconds(250)))) {
                return false;
            }
        }
        last_call = Clock::now();
        return true;
    }

    /// One call to the ERP for `d`, and what it answered recorded. Throws ErpFailure.
    void attempt(const Delivery& d) {
        if (d.action == ErpAction::cancel) {
            gateway.cancel_sales_order(d.order_id, d.trace_id);
            observe_delivered(d, "cancelled");
            return;
        }
        std::optional<erp::SalesOrder> order;
        bool mark = false;
        std::string skip;
        commands.with_state([&](const model::CommerceState& s) {
            const auto* o = s.order(d.order_id);
            if (o == nullptr) {
                skip = "unknown order";
                return;
            }
            if (o->status == events::OrderStatus::placed && !o->warehouse_id.empty()) {
                mark = true;
            } else if (o->status != events::OrderStatus::sent_to_erp) {
                skip = std::string(events::to_string(o->status));
                return;
            }
            erp::SalesOrder so;
            so.order_id = d.order_id;
            so.partner_id = o->partner_id;
            so.warehouse_id = o->warehouse_id;
            so.total_idr = o->subtotal_idr;
            for (const auto& line : o->placed.lines) {
                so.lines.push_back({line.sku, line.qty, line.unit_price_idr});
            }
            order = std::move(so);
        });
        if (!order) {
            // Cancelled before it could be sent, or delivered already (a restart between the
            // answer and the checkpoint): nothing to do.
            count("skipped");
            log(LogLevel::info, "erp: nothing to send",
                {{"trace_id", d.trace_id}, {"order_id", d.order_id}, {"status", skip}});
            return;
        }
        if (mark) {
            auto marked = commands.execute(commands::MarkOrderSentToErp{d.order_id},
                                           metadata(d, "erp-projector"));
            if (!marked.ok()) {
                if (marked.error().reason == commands::Rejected::order_state_changed) {
                    count("skipped");
                    return;  // Cancelled meanwhile.
                }
                throw StoreError("recording OrderSentToErp failed: " + marked.error().message);
            }
        }
        const auto answer = gateway.create_sales_order(*order, d.trace_id);
        if (options.crash_after_erp_answer) {
            log(LogLevel::warn, "erp: failpoint erp_after_answer: exiting now",
                {{"order_id", d.order_id}, {"erp_ref", answer.erp_order_ref}});
            ::_exit(137);
        }
        if (answer.accepted) {
            auto recorded =
                commands.execute(commands::RecordErpAcceptance{d.order_id, answer.erp_order_ref},
                                 metadata(d, "erp-projector"));
            if (!recorded.ok()) {
                throw StoreError("recording OrderAcceptedByErp failed: " +
                                 recorded.error().message);
            }
            observe_delivered(d, "accepted");
        } else {
            auto recorded =
                commands.execute(commands::RecordErpRejection{d.order_id, answer.reason},
                                 metadata(d, "erp-projector"));
            if (!recorded.ok()) {
                throw StoreError("recording OrderRejectedByErp failed: " +
                                 recorded.error().message);
            }
            observe_delivered(d, "rejected");
        }
    }

    void observe_delivered(const Delivery& d, std::string_view outcome) {
        ++delivered;
        count(outcome);
        delivery_latency.observe(static_cast<double>(now_us() - d.recorded_at_us) / 1e6);
        log(LogLevel::info, "erp: delivered",
            {{"trace_id", d.trace_id},
             {"order_id", d.order_id},
             {"action", std::string(events::to_string(d.action))},
             {"outcome", std::string(outcome)},
             {"position", std::to_string(d.position)}});
    }

    // ---- Dead letters.

    struct Letter {
        std::int64_t id = 0;
        std::string order_id;
        ErpAction action = ErpAction::create;
    };

    /// A dead letter someone asked to retry, if any.
    std::optional<Letter> retry_requested() {
        std::optional<Letter> found;
        commands.with_state([&](const model::CommerceState& s) {
            for (const auto& [id, letter] : s.erp_dead_letters()) {
                if (letter.retry_requested) {
                    found = Letter{id, letter.parked.order_id, letter.parked.action};
                    return;
                }
            }
        });
        return found;
    }

    void retry(const Letter& letter, Lease& lease) {
        Delivery d;
        d.position = letter.id;
        d.order_id = letter.order_id;
        d.action = letter.action;
        const auto original = store.read_all(letter.id - 1, 1);
        if (!original.empty() && original[0].global_position == letter.id) {
            d.recorded_at_us = original[0].recorded_at_us;
            try {
                d.trace_id = EventMetadata::from_json(original[0].metadata).trace_id;
            } catch (const std::exception&) {
            }
        }
        log(LogLevel::info, "erp: retrying a dead letter",
            {{"trace_id", d.trace_id},
             {"dead_letter_id", std::to_string(letter.id)},
             {"order_id", letter.order_id}});
        std::string error;
        std::int64_t attempts = 0;
        auto outcome = deliver(d, lease, attempts, error);
        if (outcome == Outcome::stopped) {
            return;
        }
        if (outcome == Outcome::parked) {
            park(d, attempts, error);  // Parked again: waits for the next retry.
            return;
        }
        // Then everything of this order that waited behind it, in order.
        auto& waiting = blocked[letter.order_id];
        while (!waiting.empty()) {
            const Delivery next = waiting.front();
            attempts = 0;
            outcome = deliver(next, lease, attempts, error);
            if (outcome == Outcome::stopped) {
                return;
            }
            waiting.pop_front();
            if (outcome == Outcome::parked) {
                park(next, attempts, error);  // The rest waits behind this one now.
                resolve(d);
                return;
            }
        }
        blocked.erase(letter.order_id);
        parked_orders.erase(letter.order_id);
        resolve(d);
    }

    void resolve(const Delivery& d) {
        auto resolved = commands.execute(commands::ResolveErpDelivery{d.position},
                                         metadata(d, "erp-projector"));
        if (!resolved.ok()) {
            throw StoreError("resolving a dead letter failed: " + resolved.error().message);
        }
        log(LogLevel::info, "erp: dead letter resolved",
            {{"trace_id", d.trace_id}, {"dead_letter_id", std::to_string(d.position)}});
    }

    // ---- Stock and debt sync.

    void run_sync() {
        // The next sync is due `stock.sync_interval_s` after the last one began, read again
        // every second, so a new interval applies at once (lowered from a day to a minute, it
        // does not wait out the day). A failed sync is tried again within
        // sync_retry_after_failure (the fallback cache keeps serving meanwhile), so a server
        // that started while the ERP was down gets its first figures soon after it is back.
        std::optional<Clock::time_point> last;
        bool last_failed = false;
        bool was_leader = false;
        while (!stopping) {
            if (!leader) {
                was_leader = false;
                sleep_for(std::chrono::milliseconds(500));
                continue;
            }
            if (!was_leader) {
                last.reset();  // Sync at start (of leadership).
                was_leader = true;
            }
            auto wait =
                std::chrono::seconds(config_or("stock.sync_interval_s", default_sync_interval_s));
            if (last_failed) {
                wait = std::min(wait, sync_retry_after_failure);
            }
            if (!last || Clock::now() >= *last + wait) {
                last = Clock::now();
                const auto trace_id = random_trace_id();
                last_failed = true;
                try {
                    sync(trace_id);
                    last_failed = false;
                } catch (const erp::ErpFailure& e) {
                    log(LogLevel::warn,
                        "erp: sync failed; the last synced stock and debt keep serving",
                        {{"trace_id", trace_id}, {"error", e.what()}});
                } catch (const std::exception& e) {
                    log(LogLevel::error, "erp: sync failed",
                        {{"trace_id", trace_id}, {"error", e.what()}});
                }
                continue;
            }
            sleep_for(
                std::min<Clock::duration>(*last + wait - Clock::now(), std::chrono::seconds(1)));
        }
    }

    ErpSyncResult sync(const std::string& trace_id) {
        std::lock_guard lock(sync_mutex);
        try {
            auto result = sync_locked(trace_id);
            std::lock_guard status(status_mutex);
            last_sync = ErpStatus::LastSync{now_us(), true, result, {}};
            return result;
        } catch (const std::exception& e) {
            std::lock_guard status(status_mutex);
            last_sync = ErpStatus::LastSync{now_us(), false, {}, e.what()};
            throw;
        }
    }

    void refused(const std::vector<erp::Refusal>& refusals, const std::string& trace_id) {
        for (const auto& r : refusals) {
            metrics
                .counter("erp_refused_figures_total",
                         "ERP stock and debt figures the ACL refused, by reason",
                         {{"reason", r.why}})
                .inc();
            log(LogLevel::warn, "erp: figure refused",
                {{"trace_id", trace_id}, {"what", r.what}, {"why", r.why}});
        }
    }

    ErpSyncResult sync_locked(const std::string& trace_id) {
        ErpSyncResult result;
        erp::KnownIds known;
        commands.with_state([&](const model::CommerceState& s) {
            known.skus = s.product_skus();
            for (const auto* w : s.warehouses()) {
                known.warehouses.push_back(w->warehouse_id);
            }
            known.partners = s.partner_ids();
        });
        EventMetadata m;
        m.actor = "erp-sync";
        m.trace_id = trace_id;
        m.correlation_id = trace_id;

        const auto stock = erp::translate(gateway.pull_stock(trace_id), known);
        refused(stock.refused, trace_id);
        result.refused += stock.refused.size();
        if (stock.event) {
            std::vector<events::StockLevel> changed;
            commands.with_state([&](const model::CommerceState& s) {
                for (const auto& level : stock.event->levels) {
                    const auto* row = s.stock(level.sku, level.warehouse_id);
                    const bool reflects_acceptance =
                        row != nullptr &&
                        std::any_of(row->accepted.begin(), row->accepted.end(),
                                    [&](auto& line) { return line.first < stock.event->as_of_us; });
                    if (row == nullptr || row->on_hand != level.on_hand || reflects_acceptance) {
                        changed.push_back(level);
                    }
                }
            });
            if (!changed.empty()) {
                auto recorded = commands.execute(
                    commands::RecordStockLevels{stock.event->as_of_us, changed}, m);
                if (!recorded.ok()) {
                    throw StoreError("recording stock levels failed: " + recorded.error().message);
                }
                result.stock_changed = true;
            }
        }

        const auto debt = erp::translate(gateway.pull_debt(trace_id), known);
        refused(debt.refused, trace_id);
        result.refused += debt.refused.size();
        for (const auto& figure : debt.events) {
            bool changed = false;
            commands.with_state([&](const model::CommerceState& s) {
                const auto* p = s.partner(figure.partner_id);
                // A new figure, or one that now includes orders the ERP accepted.
                changed = p != nullptr &&
                          (p->erp_debt_idr != figure.outstanding_idr ||
                           std::any_of(p->accepted_since_debt_sync.begin(),
                                       p->accepted_since_debt_sync.end(), [&](const auto& a) {
                                           return a.second.accepted_at_us < figure.as_of_us;
                                       }));
            });
            if (!changed) {
                continue;
            }
            auto recorded = commands.execute(
                commands::RecordPartnerDebt{figure.partner_id, figure.outstanding_idr,
                                            figure.as_of_us},
                m);
            if (!recorded.ok()) {
                throw StoreError("recording partner debt failed: " + recorded.error().message);
            }
            result.debt_changed = true;
        }
        log(LogLevel::info, "erp: synced",
            {{"trace_id", trace_id},
             {"stock_changed", result.stock_changed ? "true" : "false"},
             {"debt_changed", result.debt_changed ? "true" : "false"},
             {"refused", std::to_string(result.refused)}});
        return result;
    }
};

ErpWorker::ErpWorker(EventStore& store, commands::CommandService& commands,
                     erp::ErpGateway& gateway, ConfigReader config, metrics::Registry& metrics,
                     ErpWorkerOptions options)
    : impl_(std::make_unique<Impl>(store, commands, gateway, std::move(config), metrics, options)) {
}

ErpWorker::~ErpWorker() {
    stop();
}

void ErpWorker::start() {
    impl_->projector_thread = std::thread([this] {
        name_this_thread("oe-erp-deliver");
        impl_->run_projector();
    });
    impl_->sync_thread = std::thread([this] {
        name_this_thread("oe-erp-sync");
        impl_->run_sync();
    });
}

void ErpWorker::stop() {
    {
        std::lock_guard lock(impl_->sleep_mutex);
        impl_->stopping = true;
    }
    impl_->sleep_cv.notify_all();
    impl_->store.interrupt_waiters();
    if (impl_->projector_thread.joinable()) {
        impl_->projector_thread.join();
    }
    if (impl_->sync_thread.joinable()) {
        impl_->sync_thread.join();
    }
}

ErpSyncResult ErpWorker::sync_now(const std::string& trace_id) {
    return impl_->sync(trace_id);
}

ErpStatus ErpWorker::status() {
    ErpStatus s;
    s.leader = impl_->leader;
    s.circuit_state = std::string(erp::to_string(impl_->gateway.breaker().state()));
    s.checkpoint = impl_->committed;
    s.outbox_pending = impl_->pending;
    s.max_rps_hundredths = impl_->config_or("erp.max_rps", default_max_rps_hundredths);
    s.error_rate = impl_->gateway.error_rate();
    s.delivered = impl_->delivered;
    {
        std::lock_guard lock(impl_->status_mutex);
        s.last_sync = impl_->last_sync;
    }
    impl_->commands.with_state([&](const model::CommerceState& state) {
        for (const auto& [id, letter] : state.erp_dead_letters()) {
            s.dead_letters.push_back({id, letter.parked.order_id,
                                      std::string(events::to_string(letter.parked.action)),
                                      letter.parked.attempts, letter.parked.last_error,
                                      letter.parked_at_us, letter.retry_requested});
        }
    });
    return s;
}

}  // namespace oe::app
