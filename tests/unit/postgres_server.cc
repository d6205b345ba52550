#include "tests/unit/postgres_server.h"

#include <arpa/inet.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace berth::testing {
namespace {

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A port nobody listens on now (the kernel's choice for an ephemeral bind).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

ABSL_CONST_INIT absl::Mutex g_mu(absl::kConstInit);
PostgresServer* g_server = nullptr;
absl::Status* g_error = nullptr;

}  // namespace

absl::StatusOr<PostgresServer*> PostgresServer::Get() {
  absl::MutexLock lock(&g_mu);
  if (g_server != nullptr) return g_server;
  if (g_error != nullptr) return *g_error;
  auto* s = new PostgresServer();
  absl::Status st = s->Init();
  if (!st.ok()) {
    delete s;
    g_error = new absl::Status(st);
    return st;
  }
  g_server = s;
  std::atexit([] {
    if (g_server == nullptr) return;
    (void)g_server->Stop();
    (void)!std::system(("rm -rf " + Quote(g_server->dir_)).c_str());
  });
  return g_server;
}

std::string PostgresServer::AsServerUser(const std::string& command) const {
  return as_postgres_ ? "runuser -u postgres -- sh -c " + Quote(command) : command;
}

absl::Status PostgresServer::Init() {
  const char* env = std::getenv("BERTH_PG_BINDIR");
  if (env != nullptr && *env != '\0') {
    bin_ = env;
  } else {
    glob_t g{};
    if (glob("/usr/lib/postgresql/*/bin/pg_ctl", 0, nullptr, &g) == 0 && g.gl_pathc > 0) {
      const std::string last = g.gl_pathv[g.gl_pathc - 1];  // the newest version, sorted
      bin_ = last.substr(0, last.rfind('/'));
    }
    globfree(&g);
  }
  if (bin_.empty() || access((bin_ + "/pg_ctl").c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/pg_ctl, or $BERTH_PG_BINDIR): "
        "scripts/setup.sh installs the postgresql package");
  }
  char tmpl[] = "/tmp/berth-pg-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp failed");
  dir_ = tmpl;
  if (geteuid() == 0) {
    const passwd* pw = getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError(
          "the tests run as root and there is no 'postgres' account to run PostgreSQL as");
    }
    as_postgres_ = true;
    if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0)
      return absl::InternalError("cannot chown " + dir_);
  }
  const std::string initdb = AsServerUser(
      absl::StrCat(bin_, "/initdb -D ", dir_, "/data -U berth --auth=trust -E UTF8 --no-sync > ",
                   dir_, "/initdb.log 2>&1"));
  if (std::system(initdb.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("initdb failed:\n", ReadAll(dir_ + "/initdb.log")));
  }
  port_ = FreePort();
  if (port_ == 0) return absl::InternalError("no free port");
  return Start();
}

absl::Status PostgresServer::Start() {
  // fsync off: a test database need not survive a power cut, and fsyncs dominate its time.
  const std::string cmd = AsServerUser(
      absl::StrCat(bin_, "/pg_ctl -D ", dir_, "/data -l ", dir_, "/server.log -w -t 60 -o ",
                   Quote(absl::StrCat("-c listen_addresses=127.0.0.1 -p ", port_, " -k ", dir_,
                                      " -c fsync=off -c max_connections=200")),
                   " start > ", dir_, "/pg_ctl.log 2>&1"));
  if (std::system(cmd.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("pg_ctl start failed:\n", ReadAll(dir_ + "/pg_ctl.log"),
                                            ReadAll(dir_ + "/server.log")));
  }
  return absl::OkStatus();
}

absl::Status PostgresServer::Stop() {
  const std::string cmd = AsServerUser(absl::StrCat(
      bin_, "/pg_ctl -D ", dir_, "/data -m immediate -w stop > ", dir_, "/pg_ctl.log 2>&1"));
  if (std::system(cmd.c_str()) != 0)
    return absl::InternalError("pg_ctl stop failed:\n" + ReadAll(dir_ + "/pg_ctl.log"));
  return absl::OkStatus();
}

absl::Status PostgresServer::Psql(const std::string& db, const std::string& sql) {
  const std::string cmd =
      absl::StrCat(bin_, "/psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p ", port_, " -U berth -d ",
                   Quote(db), " -c ", Quote(sql), " > ", dir_, "/psql.log 2>&1");
  if (std::system(cmd.c_str()) != 0)
    return absl::InternalError(absl::StrCat("psql: ", sql, ": ", ReadAll(dir_ + "/psql.log")));
  return absl::OkStatus();
}

absl::StatusOr<std::string> PostgresServer::NewDatabase() {
  std::string name;
  {
    absl::MutexLock lock(&g_mu);
    name = absl::StrCat("test_", getpid(), "_", ++databases_);
  }
  if (absl::Status s = Psql("postgres", "CREATE DATABASE " + name); !s.ok()) return s;
  return absl::StrCat("postgresql://berth@127.0.0.1:", port_, "/", name);
}

}  // namespace berth::testing
