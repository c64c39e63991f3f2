#include <oe/app/rebuild_process.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <oe/kernel/log.hpp>
#include <oe/kernel/time.hpp>

extern char** environ;

namespace oe::app {

namespace {

std::int64_t int_or_zero(const boost::json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_int64() ? v->as_int64() : 0;
}

std::string string_or_empty(const boost::json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::int64_t time_or_zero(const boost::json::object& o, std::string_view key) {
    const auto text = string_or_empty(o, key);
    return text.empty() ? 0 : parse_iso8601_us(text).value_or(0);
}

/// Closes a file descriptor when it goes out of scope.
struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
};

std::string exit_text(int status) {
    if (WIFEXITED(status)) {
        return fmt::format("exited with status {}", WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return fmt::format("was killed by signal {} ({})", WTERMSIG(status),
                           ::strsignal(WTERMSIG(status)));
    }
    return "ended";
}

projections::RebuildStatus run_child(
    const std::string& executable, const std::string& database_url,
    const std::vector<std::string>& names,
    const std::function<void(const projections::RebuildStatus&)>& progress,
    const std::atomic<bool>& cancel) {
    std::vector<std::string> args{"orderengine", "rebuild", "--beside-server", "--progress",
                                  "json"};
    if (names.empty()) {
        args.emplace_back("--all");
    } else {
        args.insert(args.end(), names.begin(), names.end());
    }
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    // The server's environment, with the database it serves (it may have come from a default).
    std::vector<std::string> env_text;
    for (char** e = environ; *e != nullptr; ++e) {
        if (std::strncmp(*e, "DATABASE_URL=", 13) != 0 &&
            std::strncmp(*e, "OE_REBUILD_PARENT_PID=", 22) != 0) {
            env_text.emplace_back(*e);
        }
    }
    env_text.push_back("DATABASE_URL=" + database_url);
    // Who started it: a server that dies before the rebuild asks for the parent-death signal
    // sends none, and the rebuild sees it gone by this (main.cpp, run_rebuild).
    env_text.push_back(fmt::format("OE_REBUILD_PARENT_PID={}", ::getpid()));
    std::vector<char*> envp;
    for (auto& e : env_text) {
        envp.push_back(e.data());
    }
    envp.push_back(nullptr);

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
        throw std::runtime_error(
            fmt::format("cannot start the rebuild process: pipe: {}", std::strerror(errno)));
    }
    Fd read_end{pipe_fds[0]};
    Fd write_end{pipe_fds[1]};
    // stdin from /dev/null, stdout into the pipe, stderr the server's; nothing else of the
    // server's (its listening socket, its connections) goes with it.
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    ::posix_spawn_file_actions_adddup2(&actions, write_end.fd, 1);
    ::posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    // No signal blocked (whatever this thread blocks), so SIGTERM reaches it.
    posix_spawnattr_t attributes;
    ::posix_spawnattr_init(&attributes);
    sigset_t none;
    sigemptyset(&none);
    ::posix_spawnattr_setsigmask(&attributes, &none);
    // Its CPU priority is this thread's (RebuildJobs lowers it); the rebuild itself moves its
    // fold and write to SCHED_IDLE and keeps the holds at this priority (the live projector,
    // and on SQLite checkout, wait for them). The whole process at SCHED_IDLE measured no
    // better (bench/README.md, eighth session).
    ::posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = 0;
    const int spawned =
        ::posix_spawn(&pid, executable.c_str(), &actions, &attributes, argv.data(), envp.data());
    ::posix_spawn_file_actions_destroy(&actions);
    ::posix_spawnattr_destroy(&attributes);
    if (spawned != 0) {
        throw std::runtime_error(fmt::format("cannot start the rebuild process {}: {}", executable,
                                             std::strerror(spawned)));
    }
    ::close(write_end.fd);
    write_end.fd = -1;
    log(LogLevel::info, "rebuild process started", {{"pid", std::to_string(pid)}});

    std::optional<projections::RebuildStatus> last;
    std::string pending;
    // Cancelled: SIGTERM (the child stops before its swap, or finishes one under way), and
    // SIGKILL if it is still there 10 s later (a crash leaves the live tables as they were).
    std::optional<std::chrono::steady_clock::time_point> signalled;
    bool killed = false;
    for (;;) {
        if (cancel.load() && !signalled) {
            ::kill(pid, SIGTERM);
            signalled = std::chrono::steady_clock::now();
        }
        if (signalled && !killed &&
            std::chrono::steady_clock::now() - *signalled > std::chrono::seconds(10)) {
            log(LogLevel::warn, "the rebuild process ignored SIGTERM for 10 s: killed",
                {{"pid", std::to_string(pid)}});
            ::kill(pid, SIGKILL);
            killed = true;
        }
        pollfd p{read_end.fd, POLLIN, 0};
        const int ready = ::poll(&p, 1, 100);
        if (ready < 0 && errno != EINTR) {
            break;
        }
        if (ready <= 0) {
            continue;
        }
        char buffer[65536];
        const auto got = ::read(read_end.fd, buffer, sizeof buffer);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;  // The child closed its end: it has ended.
        }
        pending.append(buffer, static_cast<std::size_t>(got));
        for (auto eol = pending.find('\n'); eol != std::string::npos; eol = pending.find('\n')) {
            if (auto status = parse_rebuild_status(std::string_view(pending).substr(0, eol))) {
                last = std::move(status);
                progress(*last);
            }
            pending.erase(0, eol + 1);
        }
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (last && last->state == "done") {
        return *last;
    }
    if (last && !last->error.empty()) {
        throw std::runtime_error(last->error);
    }
    throw std::runtime_error(fmt::format("the rebuild process {}", exit_text(status)));
}

}  // namespace

projections::RebuildRunner rebuild_in_child_process(std::string executable,
                                                    std::string database_url) {
    return [executable = std::move(executable), database_url = std::move(database_url)](
               const std::vector<std::string>& names,
               const std::function<void(const projections::RebuildStatus&)>& progress,
               const std::atomic<bool>& cancel) {
        return run_child(executable, database_url, names, progress, cancel);
    };
}

std::optional<projections::RebuildStatus> parse_rebuild_status(std::string_view line) {
    boost::system::error_code ec;
    const auto value = boost::json::parse(line, ec);
    if (ec || !value.is_object()) {
        return std::nullopt;
    }
    const auto& o = value.as_object();
    const auto* state = o.if_contains("state");
    if (state == nullptr || !state->is_string()) {
        return std::nullopt;
    }
    projections::RebuildStatus s;
    s.job_id = string_or_empty(o, "job_id");
    if (const auto* names = o.if_contains("projections"); names != nullptr && names->is_array()) {
        for (const auto& n : names->as_array()) {
            if (n.is_string()) {
                s.projections.emplace_back(n.as_string());
            }
        }
    }
    s.state = std::string(state->as_string());
    s.position = int_or_zero(o, "position");
    s.target = int_or_zero(o, "target");
    s.events_per_s = int_or_zero(o, "events_per_s");
    s.eta_ms = int_or_zero(o, "eta_ms");
    s.written_rows = int_or_zero(o, "written_rows");
    s.share_percent = static_cast<int>(int_or_zero(o, "share_percent"));
    if (const auto* phases = o.if_contains("phases_ms"); phases != nullptr && phases->is_object()) {
        const auto& p = phases->as_object();
        s.fold_ms = int_or_zero(p, "fold");
        s.write_ms = int_or_zero(p, "write");
        s.swap_ms = int_or_zero(p, "swap");
        s.checksum_ms = int_or_zero(p, "checksum");
        s.held_ms = int_or_zero(p, "held");
        s.locked_ms = int_or_zero(p, "locked");
    }
    s.started_at_us = time_or_zero(o, "started_at");
    s.finished_at_us = time_or_zero(o, "finished_at");
    s.swapped_at = int_or_zero(o, "swapped_at");
    if (const auto* sums = o.if_contains("checksums"); sums != nullptr && sums->is_array()) {
        for (const auto& c : sums->as_array()) {
            if (!c.is_object()) {
                continue;
            }
            const auto& co = c.as_object();
            s.checksums.push_back({string_or_empty(co, "table"), string_or_empty(co, "live"),
                                   string_or_empty(co, "rebuilt"), int_or_zero(co, "rows"),
                                   int_or_zero(co, "live_at")});
        }
    }
    s.error = string_or_empty(o, "error");
    return s;
}

}  // namespace oe::app
