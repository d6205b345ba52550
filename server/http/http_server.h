// Berth's HTTP/1.1 server (Boost.Beast over Asio): connections cost no thread each (thousands of
// idle keep-alive connections are sockets with a read pending), a slow client is closed by the
// header and read timeouts, a body over its route's limit is refused (413) before it is read,
// TLS uses the server's certificates (reloaded on SIGHUP), and a drain answers 503 to new
// requests while the ones in flight finish. Routes are plain functions of an HttpRequest;
// those marked blocking (they call a facade that tokenizes, waits for a batch or touches
// files) run on the request pool, never on a network thread. It knows nothing of Berth's API:
// the routes (server/http/routes.h) do.
#ifndef BERTH_SERVER_HTTP_HTTP_SERVER_H_
#define BERTH_SERVER_HTTP_HTTP_SERVER_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/util/json.h"
#include "core/util/thread_pool.h"

namespace berth::server::http {

struct HttpRequest {
  std::string method;                                        // GET, POST, ...
  std::string target;                                        // as sent: path and query
  std::string path;                                          // percent-decoded, without the query
  std::map<std::string, std::string> query;                  // decoded
  std::map<std::string, std::string> params;                 // from the route's {name} segments
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string peer;  // the client's address
  // Polled by a blocking route while it works: true once the client has gone (closed the
  // connection), so that queued work is dropped as a cancelled gRPC call's is.
  std::function<bool()> client_gone;
  // The first header of that (lower-case) name.
  std::optional<absl::string_view> Header(absl::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // A streamed body (chunked): when set, the headers go out with `content_type` and
  // `next_event` is called on the request pool until it returns false; each string it yields
  // is written as it comes. For `text/event-stream` (Server-Sent Events) each is one event
  // ("event: x\ndata: y\n\n"), and an empty string is a keep-alive comment; other streams
  // never yield one.
  std::function<bool(std::string* event)> next_event;
};

using Route = std::function<HttpResponse(HttpRequest&)>;

struct RouteOptions {
  bool blocking = true;  // run on the request pool
  // Bytes of body this route reads (the server's default when 0).
  int64_t max_body_bytes = 0;
};

// Method + path patterns ("/models/{name}/predict"; a trailing "{rest...}" takes the rest).
class Router {
 public:
  void Add(const std::string& method, const std::string& pattern, Route route,
           RouteOptions options = {});
  struct Match {
    const Route* route = nullptr;
    RouteOptions options;
    std::string pattern;  // for metrics and logs
    std::map<std::string, std::string> params;
    bool path_known = false;  // the path has routes, not for this method (405)
  };
  Match Find(absl::string_view method, absl::string_view path) const;
  // Every (METHOD, pattern) added.
  std::vector<std::pair<std::string, std::string>> Routes() const;

 private:
  struct Entry {
    std::string method, pattern;
    std::vector<std::string> segments;
    Route route;
    RouteOptions options;
  };
  std::vector<Entry> entries_;
};

struct HttpServerOptions {
  std::string listen = "127.0.0.1:8080";  // port 0: any free port; a host name resolves (IPv4)
  std::string flag = "--http-listen";     // the option `listen` came from, for its errors
  int threads = 2;                        // network threads (no request work runs on them)
  int64_t max_body_bytes = 16 << 20;      // a route's default
  size_t max_header_bytes = 64 << 10;     // request line and headers together
  std::chrono::milliseconds header_timeout{10000};  // a request's headers must arrive within
  std::chrono::milliseconds read_timeout{60000};    // and its body within
  std::chrono::milliseconds idle_timeout{75000};    // an idle keep-alive connection is closed
  // TLS: PEM files (the staged copies the gRPC side watches too); empty: plaintext.
  std::string tls_cert, tls_key, tls_client_ca;
};

// What the server reports about each answered request (metrics, the access log).
struct RequestRecord {
  std::string method, route, target, peer, request_id;
  int status = 0;
  double seconds = 0;
  int64_t bytes_in = 0, bytes_out = 0;
};

class HttpServer {
 public:
  // Binds and starts serving `router`'s routes; blocking ones run on `pool`.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HttpServerOptions& options, std::shared_ptr<const Router> router, ThreadPool* pool,
      std::function<void(const RequestRecord&)> on_request);
  ~HttpServer();  // Stop(0)

  int port() const;
  // Re-reads the TLS files for new connections (SIGHUP); the old ones stay on error.
  absl::Status ReloadTls();
  // New requests get 503 (Connection: close) and idle connections are closed; requests in
  // flight finish. Then Stop waits up to `grace` for them and closes everything.
  void BeginDrain();
  void Stop(std::chrono::milliseconds grace);
  int64_t open_connections() const;

  class Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A JSON error body: {"error": message, "error_type": type} with the status for `status`'s
// meaning (server/status.h).
HttpResponse ErrorResponse(const absl::Status& status);
// The same status in OpenAI's error form ({"error": {"message", "type", "param", "code"}}), which
// its clients read the message from; for the OpenAI-compatible routes.
HttpResponse OpenAiErrorResponse(const absl::Status& status);
HttpResponse JsonResponse(int status, std::string body);
// A JSON body as it goes on the wire: compact, invalid UTF-8 replaced.
std::string CompactJson(const Json& j);

}  // namespace berth::server::http

#endif  // BERTH_SERVER_HTTP_HTTP_SERVER_H_
