// c10d process groups for data-parallel training (see distributed.h).
#include "core/train/distributed.h"

#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/train/distributed_ops.h"

namespace berth::train {

struct DistributedGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

namespace {

absl::StatusOr<std::optional<int64_t>> EnvInt(const char* name, int64_t min, int64_t max) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::optional<int64_t>();
  int64_t x = 0;
  if (!absl::SimpleAtoi(v, &x) || x < min || x > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        "environment variable ", name, "='", v, "' must be an integer in [", min, ", ", max, "]"));
  }
  return std::optional<int64_t>(x);
}

bool IsLoopbackAddress(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

}  // namespace

int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

absl::StatusOr<std::optional<DistributedOptions>> DistributedOptionsFromEnvironment() {
  auto world = EnvInt("WORLD_SIZE", 1, 4096);
  if (!world.ok()) return world.status();
  if (!world->has_value() || **world == 1) return std::optional<DistributedOptions>();
  DistributedOptions o;
  o.world_size = static_cast<int>(**world);
  auto rank = EnvInt("RANK", 0, o.world_size - 1);
  if (!rank.ok()) return rank.status();
  if (!rank->has_value()) return absl::InvalidArgumentError("WORLD_SIZE is set but RANK is not");
  o.rank = static_cast<int>(**rank);
  auto local = EnvInt("LOCAL_RANK", 0, o.world_size - 1);
  if (!local.ok()) return local.status();
  o.local_rank = static_cast<int>(local->value_or(o.rank));
  auto local_world = EnvInt("LOCAL_WORLD_SIZE", 1, o.world_size);
  if (!local_world.ok()) return local_world.status();
  o.local_world_size = static_cast<int>(local_world->value_or(1));
  auto port = EnvInt("MASTER_PORT", 1, 65535);
  if (!port.ok()) return port.status();
  if (!port->has_value())
    return absl::InvalidArgumentError("WORLD_SIZE is set but MASTER_PORT is not");
  o.master_port = static_cast<int>(**port);
  const char* addr = std::getenv("MASTER_ADDR");
  if (addr == nullptr || *addr == '\0')
    return absl::InvalidArgumentError("WORLD_SIZE is set but MASTER_ADDR is not");
  o.master_addr = addr;
  return std::optional<DistributedOptions>(o);
}

absl::StatusOr<std::unique_ptr<DistributedGroup>> DistributedGroup::Join(
    const DistributedOptions& o) {
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", o.rank, " is outside a world of ", o.world_size));
  }
  std::unique_ptr<DistributedGroup> g(new DistributedGroup());
  g->options_ = o;
  g->impl_ = std::make_unique<Impl>();
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<size_t>(o.world_size);
    so.waitWorkers = true;
    so.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout);
    g->impl_->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
    auto po = c10d::ProcessGroupGloo::Options::create(
        std::chrono::duration_cast<std::chrono::milliseconds>(o.timeout));
    // The interface: GLOO_SOCKET_IFNAME as in PyTorch; loopback for a single-host group on
    // 127.0.0.1; otherwise the address this host's name resolves to.
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    if (ifname != nullptr && *ifname != '\0') {
      po->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (IsLoopbackAddress(o.master_addr)) {
      po->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      po->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    po->threads = 2;
    g->impl_->pg =
        c10::make_intrusive<c10d::ProcessGroupGloo>(g->impl_->store, o.rank, o.world_size, po);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("rank ", o.rank, " could not join the group at ",
                                               o.master_addr, ":", o.master_port, ": ", e.what()));
  }
  return g;
}

DistributedGroup::~DistributedGroup() = default;

void BroadcastFromRank0(DistributedGroup& g, const std::vector<at::Tensor>& tensors) {
  at::NoGradGuard no_grad;
  for (const at::Tensor& t : tensors) {
    std::vector<at::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    g.impl().pg->broadcast(one)->wait();
    if (!t.is_contiguous()) const_cast<at::Tensor&>(t).copy_(one[0]);
  }
}

void AverageGradients(DistributedGroup& g, const std::vector<at::Tensor>& params) {
  at::NoGradGuard no_grad;
  const auto start = std::chrono::steady_clock::now();
  struct Bucket {
    std::vector<at::Tensor> grads;
    at::Tensor flat;
    c10::intrusive_ptr<c10d::Work> work;
  };
  std::vector<Bucket> buckets;
  auto launch = [&](Bucket& b) {
    std::vector<at::Tensor> flat_views;
    for (const at::Tensor& gr : b.grads) flat_views.push_back(gr.reshape({-1}));
    b.flat = at::cat(flat_views);
    std::vector<at::Tensor> one{b.flat};
    b.work = g.impl().pg->allreduce(one);
  };
  Bucket current;
  int64_t bytes = 0;
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    const at::Tensor& gr = it->grad();
    if (!gr.defined()) continue;
    current.grads.push_back(gr);
    bytes += gr.numel() * static_cast<int64_t>(gr.element_size());
    if (bytes >= g.options().bucket_bytes) {
      buckets.push_back(std::move(current));
      launch(buckets.back());
      current = Bucket();
      bytes = 0;
    }
  }
  if (!current.grads.empty()) {
    buckets.push_back(std::move(current));
    launch(buckets.back());
  }
  const double scale = 1.0 / static_cast<double>(g.world_size());
  for (Bucket& b : buckets) {
    b.work->wait();
    b.flat.mul_(scale);
    int64_t offset = 0;
    for (const at::Tensor& gr : b.grads) {
      const int64_t n = gr.numel();
      const_cast<at::Tensor&>(gr).copy_(b.flat.narrow(0, offset, n).view(gr.sizes()));
      offset += n;
    }
  }
  g.AddAllreduceSeconds(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

void AllReduceSum(DistributedGroup& g, at::Tensor& t) {
  std::vector<at::Tensor> one{t};
  g.impl().pg->allreduce(one)->wait();
}

}  // namespace berth::train
