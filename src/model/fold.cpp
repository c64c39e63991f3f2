#include <oe/model/fold.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <oe/events/events.hpp>
#include <oe/kernel/event_store.hpp>
#include <oe/kernel/thread_name.hpp>
#include <oe/model/commerce_state.hpp>

namespace oe::model {

namespace {

/// One read of the log, decoded.
struct Batch {
    std::vector<RecordedEvent> events;
    std::vector<Result<events::DomainEvent, events::DecodeError>> decoded;
};

/// Reads a batch and decodes the first `share` (per mille) of it; the folding thread decodes
/// the rest (reading and decoding cost more than applying, so the two threads share the
/// decoding).
Batch read_decoded(EventStore& store, std::int64_t after, std::size_t count, int share) {
    Batch batch;
    batch.events = store.read_all(after, count);
    const std::size_t here = batch.events.size() * static_cast<std::size_t>(share) / 1000;
    batch.decoded.reserve(batch.events.size());
    for (std::size_t i = 0; i < here; ++i) {
        batch.decoded.push_back(events::decode(batch.events[i]));
    }
    return batch;
}

void decode_rest(Batch& batch) {
    for (std::size_t i = batch.decoded.size(); i < batch.events.size(); ++i) {
        batch.decoded.push_back(events::decode(batch.events[i]));
    }
}

/// The reading thread: one for the whole fold. A thread per batch (`std::async`) cost more
/// than its start: each new thread brought jemalloc a fresh thread cache, and each exit gave
/// its memory back to the kernel, so every batch's ~30 MB was faulted in anew.
class Reader {
  public:
    Reader() = default;
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    /// Waits for the task running, if any.
    ~Reader() {
        if (thread_.joinable()) {
            {
                const std::lock_guard lock(mutex_);
                stopping_ = true;
            }
            wake_.notify_one();
            thread_.join();
        }
    }

    std::future<Batch> run(std::packaged_task<Batch()> task) {
        auto result = task.get_future();
        {
            const std::lock_guard lock(mutex_);
            task_ = std::move(task);
        }
        if (!thread_.joinable()) {
            thread_ = std::thread([this] { loop(); });
        }
        wake_.notify_one();
        return result;
    }

  private:
    void loop() {
        name_this_thread("oe-fold-read");
        std::unique_lock lock(mutex_);
        for (;;) {
            wake_.wait(lock, [this] { return stopping_ || task_.valid(); });
            if (!task_.valid()) {
                return;
            }
            auto task = std::move(task_);
            lock.unlock();
            task();  // An exception goes to the future.
            lock.lock();
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::packaged_task<Batch()> task_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace

FoldEnd fold_log(EventStore& store, CommerceState& state, const FoldLimits& limits,
                 const FoldProgress& progress) {
    FoldEnd end{state.position(), 0};
    // The reading thread's share of the decoding, per mille, balanced batch by batch: reading
    // costs more on PostgreSQL than on SQLite, so no fixed split suits both.
    int share = 400;
    // Never more than the prefix needs: an early order's audit reads a few events, not a batch.
    const auto read_after = [&store, &limits](std::int64_t after, int reader_share) {
        const auto wanted = static_cast<std::size_t>(limits.last_position - after);
        return read_decoded(store, after, std::min(wanted, limits.batch_events), reader_share);
    };
    if (limits.last_position <= state.position()) {
        return end;
    }
    auto batch = read_after(state.position(), share);
    // The batch applied last: freeing its ~20k events and their decoded copies takes ~15 ms a
    // batch on the 2-core machine (measured), so the next read frees it, on the reading thread,
    // while the reader has decoding to give back (share > 0: SQLite); a reader that decodes
    // nothing already sets the pace (PostgreSQL's reads), and this thread frees it.
    Batch spent;
    Reader reader;  // After what its tasks refer to: destroyed first, it waits for them.
    while (!batch.events.empty()) {
        const auto& last = batch.events.back();
        const bool more = last.global_position < limits.last_position &&
                          (!limits.until_us || last.recorded_at_us <= *limits.until_us);
        std::future<Batch> next;
        if (more) {
            auto read = [&read_after, after = last.global_position, share,
                         spent = std::move(spent)]() mutable {
                spent = Batch{};
                return read_after(after, share);
            };
            // Without read-ahead, deferred: read on this thread when it is wanted.
            next = limits.read_ahead ? reader.run(std::packaged_task<Batch()>(std::move(read)))
                                     : std::async(std::launch::deferred, std::move(read));
        }
        decode_rest(batch);
        for (std::size_t i = 0; i < batch.events.size(); ++i) {
            const auto& event = batch.events[i];
            if (event.global_position > limits.last_position ||
                (limits.until_us && event.recorded_at_us > *limits.until_us)) {
                return end;
            }
            state.apply(event, std::move(batch.decoded[i]));  // Each is applied once.
            end = FoldEnd{event.global_position, event.recorded_at_us};
        }
        if (progress) {
            progress(end.position);
        }
        if (!more) {
            break;
        }
        // The next batch already waiting: the reader has time to spare, give it more of
        // the decoding; this thread waiting for it: give it less.
        const bool reader_was_first =
            next.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
        share = std::clamp(share + (reader_was_first ? 50 : -50), 0, 900);
        if (share > 0) {
            spent = std::move(batch);
        }
        batch = next.get();
    }
    return end;
}

}  // namespace oe::model
