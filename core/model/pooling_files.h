// The files of a sentence-transformers model that say how it pools (ReadPoolingConfig in
// core/model/pooling.h reads them): a registered version, an import, an export and a Hub
// download carry them beside the weights, so a model embeds alike wherever it is served.
// Torch-free: the remote CLI packs them too.
#ifndef BERTH_CORE_MODEL_POOLING_FILES_H_
#define BERTH_CORE_MODEL_POOLING_FILES_H_

namespace berth {

// The pooling module's folder is the one sentence-transformers writes (`1_Pooling`); a model
// whose modules.json names another folder loses that module's settings on import and pools by
// its default (mean).
inline constexpr const char* kPoolingFiles[] = {"modules.json", "sentence_bert_config.json",
                                                "1_Pooling/config.json"};

}  // namespace berth

#endif  // BERTH_CORE_MODEL_POOLING_FILES_H_
