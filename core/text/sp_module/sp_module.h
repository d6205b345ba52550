/* The C interface of Berth's SentencePiece module (libberth_sentencepiece.so). The module is
   the only code that links libsentencepiece, whose bundled protobuf-lite 3.14 aborts next to
   protobuf 3.21 and whose header redefines absl::string_view; core loads it with
   dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND) and calls these plain-C functions. */
#ifndef BERTH_CORE_TEXT_SP_MODULE_SP_MODULE_H_
#define BERTH_CORE_TEXT_SP_MODULE_SP_MODULE_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BERTH_SP_ABI_VERSION 1

typedef void (*berth_sp_piece_fn)(const char* piece, size_t len, int id, void* user);

int berth_sp_abi_version(void);
/* Loads a serialized model from memory; NULL on failure with a message in err. */
void* berth_sp_load(const char* data, size_t len, char* err, size_t err_len);
void berth_sp_free(void* model);
int berth_sp_piece_count(void* model);
/* Encodes UTF-8 text; calls fn once per piece (its surface string and the model's id).
   Returns 0, or -1 with a message in err. */
int berth_sp_encode(void* model, const char* text, size_t len, berth_sp_piece_fn fn, void* user,
                    char* err, size_t err_len);
/* The id of a piece (the model's unk id when it has none). */
int berth_sp_piece_to_id(void* model, const char* piece, size_t len);
/* Calls fn with the piece of an id (nothing when out of range). */
void berth_sp_id_to_piece(void* model, int id, berth_sp_piece_fn fn, void* user);

#ifdef __cplusplus
}
#endif

#endif /* BERTH_CORE_TEXT_SP_MODULE_SP_MODULE_H_ */
