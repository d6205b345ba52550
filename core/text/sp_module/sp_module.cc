// libberth_sentencepiece.so: SentencePiece behind a C interface (see sp_module.h). Includes no
// abseil or protobuf header of Berth's: only sentencepiece's own.
#include "core/text/sp_module/sp_module.h"

#include <sentencepiece_processor.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

void SetError(char* err, size_t err_len, const std::string& message) {
  if (err == nullptr || err_len == 0) return;
  std::strncpy(err, message.c_str(), err_len - 1);
  err[err_len - 1] = '\0';
}

}  // namespace

extern "C" {

int berth_sp_abi_version(void) { return BERTH_SP_ABI_VERSION; }

void* berth_sp_load(const char* data, size_t len, char* err, size_t err_len) {
  try {
    auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto status = sp->LoadFromSerializedProto(std::string(data, len));
    if (!status.ok()) {
      SetError(err, err_len, status.ToString());
      return nullptr;
    }
    return sp.release();
  } catch (const std::exception& e) {
    SetError(err, err_len, e.what());
    return nullptr;
  }
}

void berth_sp_free(void* model) {
  delete static_cast<sentencepiece::SentencePieceProcessor*>(model);
}

int berth_sp_piece_count(void* model) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(model)->GetPieceSize();
}

int berth_sp_encode(void* model, const char* text, size_t len, berth_sp_piece_fn fn, void* user,
                    char* err, size_t err_len) {
  try {
    auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(model);
    std::vector<std::string> pieces;
    const auto status = sp->Encode(std::string(text, len), &pieces);
    if (!status.ok()) {
      SetError(err, err_len, status.ToString());
      return -1;
    }
    for (const std::string& p : pieces) fn(p.data(), p.size(), sp->PieceToId(p), user);
    return 0;
  } catch (const std::exception& e) {
    SetError(err, err_len, e.what());
    return -1;
  }
}

int berth_sp_piece_to_id(void* model, const char* piece, size_t len) {
  return static_cast<sentencepiece::SentencePieceProcessor*>(model)->PieceToId(
      std::string(piece, len));
}

void berth_sp_id_to_piece(void* model, int id, berth_sp_piece_fn fn, void* user) {
  auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(model);
  if (id < 0 || id >= sp->GetPieceSize()) return;
  const std::string& p = sp->IdToPiece(id);
  fn(p.data(), p.size(), id, user);
}

}  // extern "C"
