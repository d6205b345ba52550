// A real PostgreSQL server for the tests of one test binary: Debian's, started on first use on
// 127.0.0.1 at a free port with its data in a fresh temporary directory (as the `postgres`
// account when the tests run as root: PostgreSQL refuses to run as root), and stopped with its
// directory removed when the binary exits.
#ifndef BERTH_TESTS_UNIT_POSTGRES_SERVER_H_
#define BERTH_TESTS_UNIT_POSTGRES_SERVER_H_

#include <string>

#include "absl/status/statusor.h"

namespace berth::testing {

class PostgresServer {
 public:
  // The binary's server, started the first time; an error says what is missing (setup.sh
  // installs the `postgresql` package) or what failed, with the server's log.
  static absl::StatusOr<PostgresServer*> Get();

  // A fresh, empty database on it; its URL (postgresql://berth@127.0.0.1:PORT/NAME).
  absl::StatusOr<std::string> NewDatabase();
  // Runs one SQL command in database `db` with psql.
  absl::Status Psql(const std::string& db, const std::string& sql);
  int port() const { return port_; }

  // Stops the server at once (immediate shutdown, as a crash would) and starts it again on the
  // same port and data.
  absl::Status Stop();
  absl::Status Start();

 private:
  PostgresServer() = default;
  absl::Status Init();
  // `command` as the server's account (via runuser when root); its output to `log`.
  std::string AsServerUser(const std::string& command) const;

  std::string bin_, dir_;
  bool as_postgres_ = false;
  int port_ = 0;
  int databases_ = 0;
};

}  // namespace berth::testing

#endif  // BERTH_TESTS_UNIT_POSTGRES_SERVER_H_
