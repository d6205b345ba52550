// The progress line shared by `berth finetune` and `berth train --watch` / `berth watch`.
#ifndef BERTH_CLIENT_CLI_PROGRESS_H_
#define BERTH_CLIENT_CLI_PROGRESS_H_

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"

namespace berth::cli {

inline std::string Duration(double seconds) {
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return absl::StrFormat("%dh%02dm", s / 3600, (s / 60) % 60);
  if (s >= 60) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%ds", s);
}

// "[#####...] 12/250  epoch 0.05  loss 0.6931  lr 5.00e-05  80.1 samples/s  ETA 3s"; the bar
// only when `bar` (a terminal).
inline std::string ProgressLine(int64_t update, int64_t total, double epoch, double loss, double lr,
                                double samples_per_second, double eta_seconds, bool bar) {
  std::string stats =
      absl::StrFormat("%d/%d  epoch %.2f  loss %.4f  lr %.2e  %.1f samples/s  ETA %s", update,
                      total, epoch, loss, lr, samples_per_second, Duration(eta_seconds));
  if (!bar) return stats;
  const int width = 24;
  const int filled = static_cast<int>(width * update / std::max<int64_t>(1, total));
  return "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] " + stats;
}

}  // namespace berth::cli

#endif  // BERTH_CLIENT_CLI_PROGRESS_H_
