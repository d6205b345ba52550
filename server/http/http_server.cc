// The HTTP server: an acceptor and sessions on an io_context run by a few network threads.
#include "server/http/http_server.h"

#include <sys/socket.h>

#include <array>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/version.hpp>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "core/util/json.h"
#include "server/status.h"

namespace berth::server::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

std::optional<absl::string_view> HttpRequest::Header(absl::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return absl::string_view(v);
  }
  return std::nullopt;
}

std::string CompactJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

HttpResponse JsonResponse(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse ErrorResponse(const absl::Status& status) {
  const HttpError e = ToHttpError(status);
  HttpResponse r = JsonResponse(e.status, CompactJson(Json{{"error", std::string(status.message())},
                                                           {"error_type", e.type}}));
  if (e.status == 429 || e.status == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

HttpResponse OpenAiErrorResponse(const absl::Status& status) {
  HttpResponse r = ErrorResponse(status);
  const int code = ToHttpError(status).status;
  const char* type = code == 401   ? "authentication_error"
                     : code == 403 ? "permission_error"
                     : code == 404 ? "not_found_error"
                     : code == 429 ? "rate_limit_error"
                     : code >= 500 ? "server_error"
                                   : "invalid_request_error";
  // The field a message names first ("dimensions: ..."), as OpenAI's `param`.
  const std::string message(status.message());
  const size_t colon = message.find(':');
  Json param = nullptr;
  if (colon != std::string::npos && message.find(' ') > colon) param = message.substr(0, colon);
  r.body = CompactJson(
      Json{{"error", {{"message", message}, {"type", type}, {"param", param}, {"code", nullptr}}}});
  return r;
}

namespace {

int HexDigit(char h) {
  return h >= '0' && h <= '9'   ? h - '0'
         : h >= 'a' && h <= 'f' ? h - 'a' + 10
         : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                : -1;
}

std::string PercentDecode(absl::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%' && i + 2 < s.size() && HexDigit(s[i + 1]) >= 0 && HexDigit(s[i + 2]) >= 0) {
      out += static_cast<char>(HexDigit(s[i + 1]) * 16 + HexDigit(s[i + 2]));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::vector<std::string> Segments(absl::string_view path) {
  std::vector<std::string> out;
  for (absl::string_view s : absl::StrSplit(path, '/', absl::SkipEmpty())) out.emplace_back(s);
  return out;
}

const char* ReasonOnly(int status) {
  switch (status) {
    case 400:
      return "the request could not be read";
    case 404:
      return "no such route";
    case 405:
      return "method not allowed on this route";
    case 408:
      return "the request did not arrive in time";
    case 413:
      return "the request body is larger than this route takes";
    case 431:
      return "the request's headers are larger than this server takes";
    case 503:
      return "the server is shutting down";
    default:
      return "error";
  }
}

}  // namespace

void Router::Add(const std::string& method, const std::string& pattern, Route route,
                 RouteOptions options) {
  entries_.push_back(Entry{method, pattern, Segments(pattern), std::move(route), options});
}

std::vector<std::pair<std::string, std::string>> Router::Routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Entry& e : entries_) out.emplace_back(e.method, e.pattern);
  return out;
}

Router::Match Router::Find(absl::string_view method, absl::string_view path) const {
  const std::vector<std::string> parts = Segments(path);
  auto is_param = [](const std::string& seg) {
    return seg.size() > 2 && seg.front() == '{' && seg.back() == '}';
  };
  auto is_rest = [](const std::string& seg) {
    return seg.size() > 5 && seg.front() == '{' && absl::EndsWith(seg, "...}");
  };
  Match best;
  for (const Entry& e : entries_) {
    std::map<std::string, std::string> params;
    bool ok = true, rest = false;
    for (size_t i = 0; i < e.segments.size() && ok; ++i) {
      const std::string& seg = e.segments[i];
      if (i >= parts.size()) {
        ok = false;
      } else if (is_rest(seg)) {
        params[seg.substr(1, seg.size() - 5)] =
            absl::StrJoin(parts.begin() + static_cast<std::ptrdiff_t>(i), parts.end(), "/");
        rest = true;
        break;
      } else if (is_param(seg)) {
        params[seg.substr(1, seg.size() - 2)] = parts[i];
      } else if (seg != parts[i]) {
        ok = false;
      }
    }
    if (!ok || (!rest && parts.size() != e.segments.size())) continue;
    if (e.method != method) {
      best.path_known = true;
      continue;
    }
    best.route = &e.route;
    best.options = e.options;
    best.pattern = e.pattern;
    best.params = std::move(params);
    return best;
  }
  return best;
}

// ---------------------------------------------------------------------------------------------

class HttpServer::Impl {
 public:
  HttpServerOptions options;
  std::shared_ptr<const Router> router;
  ThreadPool* pool = nullptr;
  std::function<void(const RequestRecord&)> on_request;
  // Before io: sessions the io_context still holds when it goes count themselves out here.
  std::atomic<bool> draining{false};
  std::atomic<int64_t> connections{0};
  std::atomic<int64_t> in_flight{0};
  net::io_context io;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;
  int port = 0;
  // TLS: the context new connections get (replaced by ReloadTls).
  absl::Mutex tls_mu;
  std::shared_ptr<ssl::context> tls ABSL_GUARDED_BY(tls_mu);
  bool use_tls = false;

  absl::StatusOr<std::shared_ptr<ssl::context>> MakeTlsContext();
  void Accept();
  std::shared_ptr<ssl::context> CurrentTls() {
    absl::MutexLock lock(&tls_mu);
    return tls;
  }
};

namespace {

// Runs a route; a route that throws (a bug: routes report errors as statuses) answers 500
// instead of taking the process down.
HttpResponse Invoke(const Route& route, HttpRequest& req) {
  try {
    return route(req);
  } catch (const std::exception& e) {
    return ErrorResponse(absl::InternalError(absl::StrCat("internal error: ", e.what())));
  }
}

// A stream adapter so one session serves plain TCP and TLS alike.
template <typename Stream>
beast::tcp_stream& Lowest(Stream& s) {
  if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
    return s;
  } else {
    return beast::get_lowest_layer(s);
  }
}

template <typename Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(HttpServer::Impl* server, Stream stream, std::string peer)
      : server_(server), stream_(std::move(stream)), peer_(std::move(peer)) {
    ++server_->connections;
  }
  ~Session() { --server_->connections; }

  void Start() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      ReadHeader();
    } else {
      Lowest(stream_).expires_after(server_->options.header_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->ReadHeader();
                              });
    }
  }

 private:
  void ReadHeader() {
    if (server_->draining && requests_ > 0) return Close();
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_->options.max_header_bytes));
    parser_->body_limit(boost::none);  // checked against the route's limit below
    // The headers of a first request must come within the header timeout; an idle keep-alive
    // connection waits up to the idle timeout for the next.
    Lowest(stream_).expires_after(requests_ == 0 ? server_->options.header_timeout
                                                 : server_->options.idle_timeout);
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    start_ = std::chrono::steady_clock::now();
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout || ec == net::error::eof ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted) {
      return Close();
    }
    if (ec == bhttp::error::header_limit) return Reject(431);
    if (ec) return Reject(400);
    auto& req = parser_->get();
    const std::string target(req.target());
    request_.method = std::string(req.method_string());
    request_.target = target;
    const size_t q = target.find('?');
    request_.path = PercentDecode(absl::string_view(target).substr(0, q), false);
    request_.query.clear();
    if (q != std::string::npos) {
      for (absl::string_view kv :
           absl::StrSplit(absl::string_view(target).substr(q + 1), '&', absl::SkipEmpty())) {
        const size_t eq = kv.find('=');
        request_.query[PercentDecode(kv.substr(0, eq), true)] =
            eq == absl::string_view::npos ? "" : PercentDecode(kv.substr(eq + 1), true);
      }
    }
    match_ = server_->router->Find(request_.method, request_.path);
    if (match_.route == nullptr) return Reject(match_.path_known ? 405 : 404, /*close=*/false);
    if (server_->draining) return Reject(503);
    const int64_t limit = match_.options.max_body_bytes > 0 ? match_.options.max_body_bytes
                                                            : server_->options.max_body_bytes;
    // A body over the limit is refused from its Content-Length, before it is read.
    if (parser_->content_length() && *parser_->content_length() > static_cast<uint64_t>(limit)) {
      return Reject(413);
    }
    parser_->body_limit(static_cast<uint64_t>(limit));
    Lowest(stream_).expires_after(server_->options.read_timeout);
    bhttp::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) return Reject(413);
    if (ec == beast::error::timeout) return Close();
    if (ec) return Close();
    auto msg = parser_->release();
    keep_alive_ = msg.keep_alive();
    request_.headers.clear();
    for (const auto& f : msg) {
      request_.headers.emplace_back(absl::AsciiStrToLower(std::string(f.name_string())),
                                    std::string(f.value()));
    }
    request_.body = std::move(msg.body());
    request_.params = match_.params;
    request_.peer = peer_;
    ++requests_;
    ++server_->in_flight;
    Lowest(stream_).expires_never();
    if (!match_.options.blocking) return Respond(Invoke(*match_.route, request_));
    // The client's closing the connection while the route works tells the route (the socket
    // is watched for EOF; a pipelined request is left for later).
    gone_ = std::make_shared<std::atomic<bool>>(false);
    request_.client_gone = [gone = gone_] { return gone->load(); };
    WatchClient();
    auto self = this->shared_from_this();
    const bool queued = server_->pool->TrySubmit([self] {
      HttpResponse r = Invoke(*self->match_.route, self->request_);
      net::post(self->stream_.get_executor(),
                [self, r = std::move(r)]() mutable { self->Respond(std::move(r)); });
    });
    if (!queued) {
      Respond(ErrorResponse(
          absl::ResourceExhaustedError("the server's request queue is full; retry with backoff")));
    }
  }

  void WatchClient() {
    auto& socket = Lowest(stream_).socket();
    socket.async_wait(tcp::socket::wait_read,
                      [self = this->shared_from_this(), gone = gone_](beast::error_code ec) {
                        if (ec) return;
                        char c;
                        const ssize_t n = ::recv(Lowest(self->stream_).socket().native_handle(), &c,
                                                 1, MSG_PEEK | MSG_DONTWAIT);
                        if (n == 0) *gone = true;  // EOF: the client closed
                      });
  }

  void Reject(int status, bool close = true) {
    ++requests_;
    ++server_->in_flight;
    // A request answered without reading its body may stay open only if it has none (else the
    // body would be read as the next request).
    keep_alive_ = !close && parser_ && parser_->is_header_done() && parser_->get().keep_alive() &&
                  !parser_->chunked() &&
                  (!parser_->content_length() || *parser_->content_length() == 0);
    if (status == 404) match_.pattern = "(unknown)";
    const absl::StatusCode code = status == 404   ? absl::StatusCode::kNotFound
                                  : status == 503 ? absl::StatusCode::kUnavailable
                                                  : absl::StatusCode::kInvalidArgument;
    HttpResponse r = ErrorResponse(absl::Status(code, ReasonOnly(status)));
    r.status = status;
    linger_ = !keep_alive_;
    Respond(std::move(r), /*close=*/!keep_alive_);
  }

  // `close`: the connection cannot carry another request (the request could not be read).
  void Respond(HttpResponse r, bool close = false) {
    if (r.next_event) return StartEvents(std::move(r));
    auto res = std::make_shared<bhttp::response<bhttp::string_body>>();
    res->result(static_cast<unsigned>(r.status));
    res->version(11);
    res->set(bhttp::field::server, "berth");
    if (!r.content_type.empty()) res->set(bhttp::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) res->set(k, v);
    const bool keep = keep_alive_ && !close && !server_->draining;
    res->keep_alive(keep);
    res->body() = std::move(r.body);
    res->prepare_payload();
    Record(r.status, res->body().size());
    Lowest(stream_).expires_after(server_->options.read_timeout);
    bhttp::async_write(stream_, *res,
                       [self = this->shared_from_this(), res, keep](beast::error_code ec, size_t) {
                         --self->server_->in_flight;
                         if (ec || !keep) return self->Close();
                         self->ReadHeader();
                       });
  }

  // A streamed body (Server-Sent Events, an archive): the headers, then each piece as the
  // route's `next_event` yields it (called on the request pool), until it returns false.
  void StartEvents(HttpResponse r) {
    auto res = std::make_shared<bhttp::response<bhttp::empty_body>>();
    res->result(static_cast<unsigned>(r.status));
    res->version(11);
    res->set(bhttp::field::server, "berth");
    res->set(bhttp::field::content_type, r.content_type);
    if (r.content_type == "text/event-stream") res->set(bhttp::field::cache_control, "no-cache");
    for (const auto& [k, v] : r.headers) res->set(k, v);
    res->chunked(true);
    res->keep_alive(false);
    auto sr = std::make_shared<bhttp::response_serializer<bhttp::empty_body>>(*res);
    events_ = std::move(r.next_event);
    Record(r.status, 0);
    Lowest(stream_).expires_never();
    bhttp::async_write_header(
        stream_, *sr, [self = this->shared_from_this(), res, sr](beast::error_code ec, size_t) {
          if (ec) return self->EndEvents();
          self->NextEvent();
        });
  }

  void NextEvent() {
    auto self = this->shared_from_this();
    const bool queued = server_->pool->TrySubmit([self] {
      auto event = std::make_shared<std::string>();
      const bool more = !self->server_->draining && self->events_(event.get());
      net::post(self->stream_.get_executor(), [self, event, more] {
        if (!more && event->empty()) return self->EndEvents(/*last_chunk=*/true);
        if (event->empty()) *event = ": keep-alive\n\n";
        auto chunk = std::make_shared<std::string>(std::move(*event));
        net::async_write(self->stream_, bhttp::make_chunk(net::buffer(*chunk)),
                         [self, chunk, more](beast::error_code ec, size_t) {
                           if (ec) return self->EndEvents();
                           if (!more) return self->EndEvents(/*last_chunk=*/true);
                           self->NextEvent();
                         });
      });
    });
    if (!queued) EndEvents(true);
  }

  void EndEvents(bool last_chunk = false) {
    if (!last_chunk) {
      --server_->in_flight;
      return Close();
    }
    net::async_write(stream_, bhttp::make_chunk_last(),
                     [self = this->shared_from_this()](beast::error_code, size_t) {
                       --self->server_->in_flight;
                       self->Close();
                     });
  }

  void Record(int status, size_t bytes_out) {
    if (!server_->on_request) return;
    RequestRecord rec;
    rec.method = request_.method;
    rec.route = match_.pattern.empty() ? "(unknown)" : match_.pattern;
    rec.target = request_.target.size() > 256 ? request_.target.substr(0, 256) : request_.target;
    rec.peer = peer_;
    if (auto id = request_.Header("x-request-id"); id)
      rec.request_id = std::string(id->substr(0, 128));
    rec.status = status;
    rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    rec.bytes_in = static_cast<int64_t>(request_.body.size());
    rec.bytes_out = static_cast<int64_t>(bytes_out);
    server_->on_request(rec);
  }

  void Close() {
    beast::error_code ec;
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      if (linger_) {
        Lowest(stream_).expires_after(kLingerTime);
        return Linger();
      }
    } else {
      Lowest(stream_).socket().shutdown(tcp::socket::shutdown_both, ec);
    }
    Lowest(stream_).close();
  }

  // After refusing a request unread (413, 431), the client may still be sending: what comes is
  // read and dropped for a moment (kLingerTime, kLingerBytes at most) before the socket
  // closes, as nginx's lingering close does, so that closing does not reset the connection
  // (and lose the response) before the client has read it.
  static constexpr std::chrono::seconds kLingerTime{2};
  static constexpr size_t kLingerBytes = 4 << 20;
  void Linger() {
    auto chunk = std::make_shared<std::array<char, 16384>>();
    stream_.async_read_some(net::buffer(*chunk), [self = this->shared_from_this(), chunk](
                                                     beast::error_code ec, size_t n) {
      self->lingered_ += n;
      if (ec || self->lingered_ > kLingerBytes) return Lowest(self->stream_).close();
      self->Linger();
    });
  }

  HttpServer::Impl* const server_;
  Stream stream_;
  const std::string peer_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  HttpRequest request_;
  Router::Match match_;
  bool keep_alive_ = false;
  bool linger_ = false;  // the connection closes with a request's bytes still unread
  size_t lingered_ = 0;
  int64_t requests_ = 0;
  std::shared_ptr<std::atomic<bool>> gone_;
  std::function<bool(std::string*)> events_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(net::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (!ec) {
      beast::error_code ignored;
      const auto remote = socket.remote_endpoint(ignored);
      const std::string peer = ignored ? "" : remote.address().to_string();
      if (use_tls) {
        auto ctx = CurrentTls();
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
            this, beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *ctx),
            peer)
            ->Start();
      } else {
        std::make_shared<Session<beast::tcp_stream>>(this, beast::tcp_stream(std::move(socket)),
                                                     peer)
            ->Start();
      }
    }
    Accept();
  });
}

absl::StatusOr<std::shared_ptr<ssl::context>> HttpServer::Impl::MakeTlsContext() {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  beast::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  ctx->use_certificate_chain_file(options.tls_cert, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("--tls-cert: ", ec.message()));
  ctx->use_private_key_file(options.tls_key, ssl::context::pem, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("--tls-key: ", ec.message()));
  if (!options.tls_client_ca.empty()) {
    ctx->load_verify_file(options.tls_client_ca, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("--tls-client-ca: ", ec.message()));
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  return ctx;
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HttpServerOptions& options, std::shared_ptr<const Router> router, ThreadPool* pool,
    std::function<void(const RequestRecord&)> on_request) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->router = std::move(router);
  impl->pool = pool;
  impl->on_request = std::move(on_request);
  impl->use_tls = !options.tls_cert.empty();
  if (impl->use_tls) {
    auto ctx = impl->MakeTlsContext();
    if (!ctx.ok()) return ctx.status();
    absl::MutexLock lock(&impl->tls_mu);
    impl->tls = *ctx;
  }
  const size_t colon = options.listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(options.listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.flag, ": '", options.listen, "' is not HOST:PORT"));
  }
  std::string host = options.listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  beast::error_code ec;
  auto address = net::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec) {  // a host name: its first IPv4 address
    tcp::resolver resolver(impl->io);
    auto found = resolver.resolve(tcp::v4(), host, "", ec);
    if (ec || found.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(options.flag, ": cannot resolve '", host, "'",
                                                     ec ? ": " + ec.message() : ""));
    }
    address = found.begin()->endpoint().address();
  }
  const tcp::endpoint endpoint(address, static_cast<uint16_t>(port));
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, ": ", ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint().port();
  impl->work.emplace(impl->io.get_executor());
  impl->Accept();
  for (int i = 0; i < std::max(1, options.threads); ++i) {
    impl->threads.emplace_back([io = &impl->io] { io->run(); });
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::port() const { return impl_->port; }
int64_t HttpServer::open_connections() const { return impl_->connections.load(); }

absl::Status HttpServer::ReloadTls() {
  if (!impl_->use_tls) return absl::FailedPreconditionError("TLS is off");
  auto ctx = impl_->MakeTlsContext();
  if (!ctx.ok()) return ctx.status();
  absl::MutexLock lock(&impl_->tls_mu);
  impl_->tls = *ctx;
  return absl::OkStatus();
}

void HttpServer::BeginDrain() {
  impl_->draining = true;
  net::post(impl_->io, [impl = impl_.get()] {
    beast::error_code ec;
    impl->acceptor.close(ec);
  });
}

void HttpServer::Stop(std::chrono::milliseconds grace) {
  if (impl_->threads.empty()) return;
  BeginDrain();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (impl_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  impl_->work.reset();
  impl_->io.stop();
  for (std::thread& t : impl_->threads) t.join();
  impl_->threads.clear();
}

HttpServer::~HttpServer() { Stop(std::chrono::milliseconds(0)); }

}  // namespace berth::server::http
