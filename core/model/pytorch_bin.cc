// torch.save archives: a reader of the stored (uncompressed) zip that torch writes, and a
// restricted pickle machine that builds nothing but dicts, tuples, lists, scalars and tensor
// references.
#include "core/model/pytorch_bin.h"

#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/text/unicode.h"
#include "core/util/files.h"
#include "core/util/status_macros.h"

namespace berth {
namespace {

// ---- zip ------------------------------------------------------------------------------------

uint64_t Le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// The entries of a zip whose members are stored, not compressed (torch's writer, miniz with
// level 0), zip64 included. Views point into `z`.
absl::StatusOr<std::map<std::string, absl::string_view>> ReadStoredZip(absl::string_view z,
                                                                       const std::string& what) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not a valid torch.save archive (", why, ")"));
  };
  const auto* d = reinterpret_cast<const uint8_t*>(z.data());
  const size_t n = z.size();
  if (n < 22) return bad("too short for a zip");
  // The end-of-central-directory record: last signature within the trailing 64 KiB + 22 bytes.
  size_t eocd = std::string::npos;
  for (size_t i = n - 22 + 1; i-- > 0 && n - i <= 65535 + 22;) {
    if (Le(d + i, 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) return bad("no end of central directory");
  uint64_t entries = Le(d + eocd + 10, 2), cd_size = Le(d + eocd + 12, 4),
           cd_offset = Le(d + eocd + 16, 4);
  if (entries == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) {
    // zip64: the locator sits just before the record and points at the zip64 record.
    if (eocd < 20 || Le(d + eocd - 20, 4) != 0x07064b50) return bad("no zip64 locator");
    const uint64_t z64 = Le(d + eocd - 20 + 8, 8);
    if (z64 > n || n - z64 < 56 || Le(d + z64, 4) != 0x06064b50) return bad("bad zip64 record");
    entries = Le(d + z64 + 32, 8);
    cd_size = Le(d + z64 + 40, 8);
    cd_offset = Le(d + z64 + 48, 8);
  }
  if (cd_offset > n || cd_size > n - cd_offset) return bad("central directory out of bounds");
  std::map<std::string, absl::string_view> out;
  size_t p = cd_offset;
  const size_t cd_end = cd_offset + cd_size;
  for (uint64_t e = 0; e < entries; ++e) {
    if (cd_end - p < 46 || Le(d + p, 4) != 0x02014b50) return bad("bad central directory entry");
    const uint64_t method = Le(d + p + 10, 2);
    uint64_t csize = Le(d + p + 20, 4), usize = Le(d + p + 24, 4);
    const size_t name_len = Le(d + p + 28, 2), extra_len = Le(d + p + 30, 2),
                 comment_len = Le(d + p + 32, 2);
    uint64_t local = Le(d + p + 42, 4);
    if (cd_end - p - 46 < name_len + extra_len + comment_len) return bad("entry out of bounds");
    std::string name(z.substr(p + 46, name_len));
    // zip64 extra field: the 8-byte values of whichever fields above are 0xFFFFFFFF, in order.
    size_t x = p + 46 + name_len;
    const size_t x_end = x + extra_len;
    while (x_end - x >= 4) {
      const uint64_t id = Le(d + x, 2), len = Le(d + x + 2, 2);
      if (x_end - x - 4 < len) return bad("extra field out of bounds");
      if (id == 0x0001) {
        size_t q = x + 4;
        const size_t q_end = q + len;
        for (uint64_t* field : {&usize, &csize, &local}) {
          if (*field != 0xFFFFFFFF) continue;
          if (q_end - q < 8) return bad("short zip64 extra field");
          *field = Le(d + q, 8);
          q += 8;
        }
      }
      x += 4 + len;
    }
    if (method != 0) {
      return bad(absl::StrCat("'", name, "' is compressed (method ", method,
                              "); torch.save stores members uncompressed"));
    }
    if (csize != usize) return bad(absl::StrCat("'", name, "' sizes disagree"));
    if (local > n || n - local < 30 || Le(d + local, 4) != 0x04034b50) {
      return bad(absl::StrCat("'", name, "' has no local header"));
    }
    const uint64_t data = local + 30 + Le(d + local + 26, 2) + Le(d + local + 28, 2);
    if (data > n || usize > n - data) return bad(absl::StrCat("'", name, "' is truncated"));
    if (!out.emplace(name, z.substr(data, usize)).second) {
      return bad(absl::StrCat("'", name, "' appears twice"));
    }
    p += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

// ---- the restricted pickle machine ----------------------------------------------------------

enum class Kind {
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kTuple,
  kList,
  kDict,
  kGlobal,
  kStorage,
  kTensor
};

struct Value {
  Kind kind = Kind::kNone;
  int64_t i = 0;                                // kBool, kInt; kStorage: element count
  double f = 0;                                 // kFloat
  std::string s;                                // kString; kGlobal: "module.name"; kStorage: key
  DType dtype = DType::kF32;                    // kStorage
  std::vector<Value*> items;                    // kTuple, kList
  std::vector<std::pair<Value*, Value*>> dict;  // kDict, in insertion order
  // kTensor
  Value* storage = nullptr;
  int64_t offset = 0;
  std::vector<int64_t> shape, stride;
};

// The typed storages torch.save names, and the dtype of each.
std::optional<DType> StorageDType(absl::string_view global) {
  static const std::pair<const char*, DType> kStorages[] = {
      {"torch.FloatStorage", DType::kF32}, {"torch.DoubleStorage", DType::kF64},
      {"torch.HalfStorage", DType::kF16},  {"torch.BFloat16Storage", DType::kBF16},
      {"torch.LongStorage", DType::kI64},  {"torch.IntStorage", DType::kI32},
      {"torch.ShortStorage", DType::kI16}, {"torch.CharStorage", DType::kI8},
      {"torch.ByteStorage", DType::kU8},   {"torch.BoolStorage", DType::kBool}};
  for (const auto& [name, dtype] : kStorages) {
    if (global == name) return dtype;
  }
  return std::nullopt;
}

bool AllowedGlobal(absl::string_view g) {
  return g == "collections.OrderedDict" || g == "torch._utils._rebuild_tensor_v2" ||
         g == "torch._utils._rebuild_parameter" || StorageDType(g).has_value();
}

// A limit on what one pickle may build, far above any state dict (BERT-large's is ~50k values).
constexpr size_t kMaxValues = 10'000'000;

class Unpickler {
 public:
  Unpickler(absl::string_view data, std::string what) : data_(data), what_(std::move(what)) {}

  absl::StatusOr<Value*> Run() {
    while (true) {
      if (pos_ >= data_.size()) return Error("the pickle ends without STOP");
      const size_t at = pos_;
      const uint8_t op = static_cast<uint8_t>(data_[pos_++]);
      switch (op) {
        case 0x80: {  // PROTO
          ASSIGN_OR_RETURN(uint64_t proto, ReadLe(1));
          if (proto > 5) return Error(absl::StrCat("pickle protocol ", proto, " is unknown"));
          break;
        }
        case '.':  // STOP
          if (stack_.size() != 1 || !marks_.empty()) return Error("STOP with a malformed stack");
          return stack_.back();
        case 'c': {  // GLOBAL
          ASSIGN_OR_RETURN(std::string module, ReadLine());
          ASSIGN_OR_RETURN(std::string name, ReadLine());
          const std::string g = absl::StrCat(module, ".", name);
          if (!AllowedGlobal(g)) {
            return Error(absl::StrCat("the global '", g,
                                      "' is not allowed (only a state dict's "
                                      "OrderedDict, tensors and storages are)"));
          }
          ASSIGN_OR_RETURN(Value * v, New(Kind::kGlobal));
          v->s = g;
          stack_.push_back(v);
          break;
        }
        case '(':  // MARK
          marks_.push_back(stack_.size());
          break;
        case 't': {  // TUPLE
          ASSIGN_OR_RETURN(std::vector<Value*> items, PopMark());
          ASSIGN_OR_RETURN(Value * v, New(Kind::kTuple));
          v->items = std::move(items);
          stack_.push_back(v);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1, TUPLE2, TUPLE3
          const size_t k = op - 0x84;
          if (StackAboveMark() < k) return Error("TUPLE with too few items");
          ASSIGN_OR_RETURN(Value * v, New(Kind::kTuple));
          v->items.assign(stack_.end() - k, stack_.end());
          stack_.resize(stack_.size() - k);
          stack_.push_back(v);
          break;
        }
        case ')':
        case ']':
        case '}': {  // EMPTY_TUPLE, EMPTY_LIST, EMPTY_DICT
          ASSIGN_OR_RETURN(Value * v, New(op == ')'   ? Kind::kTuple
                                          : op == ']' ? Kind::kList
                                                      : Kind::kDict));
          stack_.push_back(v);
          break;
        }
        case 'N':
          RETURN_IF_ERROR(Push(Kind::kNone, 0));
          break;
        case 0x88:
        case 0x89:  // NEWTRUE, NEWFALSE
          RETURN_IF_ERROR(Push(Kind::kBool, op == 0x88));
          break;
        case 'J': {  // BININT
          ASSIGN_OR_RETURN(uint64_t v, ReadLe(4));
          RETURN_IF_ERROR(Push(Kind::kInt, static_cast<int32_t>(static_cast<uint32_t>(v))));
          break;
        }
        case 'K':
        case 'M': {  // BININT1, BININT2
          ASSIGN_OR_RETURN(uint64_t v, ReadLe(op == 'K' ? 1 : 2));
          RETURN_IF_ERROR(Push(Kind::kInt, static_cast<int64_t>(v)));
          break;
        }
        case 0x8a: {  // LONG1: little-endian two's complement of n bytes
          ASSIGN_OR_RETURN(uint64_t n, ReadLe(1));
          if (n > 8) return Error("an integer wider than 64 bits");
          ASSIGN_OR_RETURN(uint64_t v, ReadLe(static_cast<int>(n)));
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);
          RETURN_IF_ERROR(Push(Kind::kInt, static_cast<int64_t>(v)));
          break;
        }
        case 'G': {  // BINFLOAT: big-endian double
          if (data_.size() - pos_ < 8) return Error("truncated BINFLOAT");
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | static_cast<uint8_t>(data_[pos_ + k]);
          pos_ += 8;
          ASSIGN_OR_RETURN(Value * v, New(Kind::kFloat));
          std::memcpy(&v->f, &bits, sizeof(bits));
          stack_.push_back(v);
          break;
        }
        case 'X':
        case 'U': {  // BINUNICODE (4-byte length), SHORT_BINSTRING (1-byte length)
          ASSIGN_OR_RETURN(uint64_t len, ReadLe(op == 'X' ? 4 : 1));
          if (data_.size() - pos_ < len) return Error("truncated string");
          ASSIGN_OR_RETURN(Value * v, New(Kind::kString));
          v->s = std::string(data_.substr(pos_, len));
          std::u32string decoded;  // Python decodes it, and a tensor's name is JSON later
          if (!text::DecodeUtf8(v->s, text::InvalidUtf8::kReject, &decoded).ok()) {
            return Error(absl::StrCat("the string at byte ", pos_, " is not UTF-8"));
          }
          pos_ += len;
          stack_.push_back(v);
          break;
        }
        case 'q':
        case 'r': {  // BINPUT, LONG_BINPUT
          ASSIGN_OR_RETURN(uint64_t k, ReadLe(op == 'q' ? 1 : 4));
          if (stack_.empty()) return Error("PUT on an empty stack");
          memo_[k] = stack_.back();
          break;
        }
        case 'h':
        case 'j': {  // BINGET, LONG_BINGET
          ASSIGN_OR_RETURN(uint64_t k, ReadLe(op == 'h' ? 1 : 4));
          auto it = memo_.find(k);
          if (it == memo_.end()) return Error(absl::StrCat("GET of memo ", k, ", never PUT"));
          stack_.push_back(it->second);
          break;
        }
        case 'a': {  // APPEND
          if (StackAboveMark() < 2 || stack_[stack_.size() - 2]->kind != Kind::kList) {
            return Error("APPEND to something that is not a list");
          }
          Value* item = stack_.back();
          stack_.pop_back();
          stack_.back()->items.push_back(item);
          break;
        }
        case 'e': {  // APPENDS
          ASSIGN_OR_RETURN(std::vector<Value*> items, PopMark());
          if (stack_.empty() || stack_.back()->kind != Kind::kList) {
            return Error("APPENDS to something that is not a list");
          }
          for (Value* item : items) stack_.back()->items.push_back(item);
          break;
        }
        case 's': {  // SETITEM
          if (StackAboveMark() < 3 || stack_[stack_.size() - 3]->kind != Kind::kDict) {
            return Error("SETITEM on something that is not a dict");
          }
          Value* value = stack_.back();
          Value* key = stack_[stack_.size() - 2];
          stack_.resize(stack_.size() - 2);
          stack_.back()->dict.emplace_back(key, value);
          break;
        }
        case 'u': {  // SETITEMS
          ASSIGN_OR_RETURN(std::vector<Value*> items, PopMark());
          if (stack_.empty() || stack_.back()->kind != Kind::kDict || items.size() % 2 != 0) {
            return Error("SETITEMS on something that is not a dict");
          }
          for (size_t k = 0; k < items.size(); k += 2) {
            stack_.back()->dict.emplace_back(items[k], items[k + 1]);
          }
          break;
        }
        case 'Q': {  // BINPERSID: ('storage', storage type, key, location, element count)
          if (StackAboveMark() < 1) return Error("BINPERSID on an empty stack");
          Value* pid = stack_.back();
          stack_.pop_back();
          ASSIGN_OR_RETURN(Value * storage, PersistentLoad(*pid));
          stack_.push_back(storage);
          break;
        }
        case 'R': {  // REDUCE
          if (StackAboveMark() < 2) return Error("REDUCE with too few items");
          Value* args = stack_.back();
          stack_.pop_back();
          ASSIGN_OR_RETURN(Value * result, Reduce(*stack_.back(), *args));
          stack_.back() = result;
          break;
        }
        case 'b': {  // BUILD: an OrderedDict's attributes (_metadata) or a tensor's state
          if (StackAboveMark() < 2) return Error("BUILD with too few items");
          stack_.pop_back();
          const Kind k = stack_.back()->kind;
          if (k != Kind::kDict && k != Kind::kTensor) {
            return Error("BUILD of something that is not an OrderedDict or a tensor");
          }
          break;
        }
        default:
          return Error(absl::StrFormat("pickle opcode 0x%02x at byte %d is not allowed", op, at));
      }
    }
  }

 private:
  absl::Status Error(const std::string& why) const {
    return absl::InvalidArgumentError(absl::StrCat(what_, ": ", why));
  }

  absl::StatusOr<Value*> New(Kind kind) {
    if (arena_.size() >= kMaxValues) return Error("the pickle builds too many values");
    arena_.push_back(std::make_unique<Value>());
    arena_.back()->kind = kind;
    return arena_.back().get();
  }

  absl::Status Push(Kind kind, int64_t i) {
    ASSIGN_OR_RETURN(Value * v, New(kind));
    v->i = i;
    stack_.push_back(v);
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> ReadLe(int n) {
    if (data_.size() - pos_ < static_cast<size_t>(n)) return Error("the pickle is truncated");
    const uint64_t v = Le(reinterpret_cast<const uint8_t*>(data_.data()) + pos_, n);
    pos_ += n;
    return v;
  }

  absl::StatusOr<std::string> ReadLine() {
    const size_t end = data_.find('\n', pos_);
    if (end == absl::string_view::npos || end - pos_ > 256) return Error("a malformed GLOBAL");
    std::string line(data_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return line;
  }

  // Items on the stack above the innermost mark (they are the only ones an opcode may take).
  size_t StackAboveMark() const { return stack_.size() - (marks_.empty() ? 0 : marks_.back()); }

  absl::StatusOr<std::vector<Value*>> PopMark() {
    if (marks_.empty()) return Error("no MARK to pop to");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }

  absl::StatusOr<Value*> PersistentLoad(const Value& pid) {
    if (pid.kind != Kind::kTuple || pid.items.size() != 5 || pid.items[0]->kind != Kind::kString ||
        pid.items[0]->s != "storage") {
      return Error("a persistent id that is not ('storage', type, key, location, size)");
    }
    const Value& type = *pid.items[1];
    const Value& key = *pid.items[2];
    const Value& count = *pid.items[4];
    std::optional<DType> dtype;
    if (type.kind == Kind::kGlobal) dtype = StorageDType(type.s);
    if (!dtype) return Error("a storage whose type is not a typed storage");
    if (key.kind != Kind::kString || count.kind != Kind::kInt || count.i < 0) {
      return Error("a storage with a malformed key or size");
    }
    auto it = storages_.find(key.s);
    if (it != storages_.end()) {
      if (it->second->dtype != *dtype) {
        return Error(absl::StrCat("storage '", key.s, "' is named with two dtypes"));
      }
      return it->second;
    }
    ASSIGN_OR_RETURN(Value * v, New(Kind::kStorage));
    v->s = key.s;
    v->dtype = *dtype;
    v->i = count.i;
    storages_[key.s] = v;
    return v;
  }

  absl::StatusOr<std::vector<int64_t>> IntTuple(const Value& v, const char* what) {
    if (v.kind != Kind::kTuple) return Error(absl::StrCat("a tensor's ", what, " is not a tuple"));
    std::vector<int64_t> out;
    for (const Value* x : v.items) {
      if (x->kind != Kind::kInt || x->i < 0) {
        return Error(absl::StrCat("a tensor's ", what, " holds something other than a size"));
      }
      out.push_back(x->i);
    }
    return out;
  }

  absl::StatusOr<Value*> Reduce(const Value& func, const Value& args) {
    if (func.kind != Kind::kGlobal || args.kind != Kind::kTuple) {
      return Error("REDUCE of something that is not an allowed global");
    }
    if (func.s == "collections.OrderedDict") {
      if (!args.items.empty()) return Error("OrderedDict called with arguments");
      return New(Kind::kDict);
    }
    if (func.s == "torch._utils._rebuild_tensor_v2") {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      if (args.items.size() < 6 || args.items[0]->kind != Kind::kStorage ||
          args.items[1]->kind != Kind::kInt || args.items[1]->i < 0) {
        return Error("_rebuild_tensor_v2 called with the wrong arguments");
      }
      ASSIGN_OR_RETURN(Value * t, New(Kind::kTensor));
      t->storage = args.items[0];
      t->offset = args.items[1]->i;
      ASSIGN_OR_RETURN(t->shape, IntTuple(*args.items[2], "size"));
      ASSIGN_OR_RETURN(t->stride, IntTuple(*args.items[3], "stride"));
      if (t->shape.size() != t->stride.size()) {
        return Error("a tensor's size and stride differ in length");
      }
      return t;
    }
    if (func.s == "torch._utils._rebuild_parameter") {
      // (tensor, requires_grad, backward_hooks): the tensor itself.
      if (args.items.size() != 3 || args.items[0]->kind != Kind::kTensor) {
        return Error("_rebuild_parameter called with the wrong arguments");
      }
      return args.items[0];
    }
    return Error(absl::StrCat("'", func.s, "' cannot be called"));
  }

  absl::string_view data_;
  std::string what_;
  size_t pos_ = 0;
  std::vector<std::unique_ptr<Value>> arena_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, Value*> memo_;
  std::map<std::string, Value*> storages_;
};

// Copies a (possibly strided, possibly shared) tensor out of its storage, row-major.
absl::Status CopyTensor(const Value& t, absl::string_view storage, const std::string& name,
                        std::string* out) {
  const size_t esize = DTypeSize(t.storage->dtype);
  const uint64_t count = static_cast<uint64_t>(t.storage->i);
  if (storage.size() % esize != 0 || storage.size() / esize != count) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': its storage holds ",
                                                   storage.size(), " bytes, not ", count,
                                                   " elements of ", DTypeName(t.storage->dtype)));
  }
  // A state dict's tensor is never larger than its storage, and the furthest element it reaches
  // must lie inside it (an empty tensor reaches none).
  unsigned __int128 numel = 1, last = static_cast<uint64_t>(t.offset);
  bool contiguous = true;
  unsigned __int128 expected_stride = 1;
  for (size_t k = t.shape.size(); k-- > 0;) {
    numel *= static_cast<uint64_t>(t.shape[k]);
    if (numel > count) numel = count + 1;  // too large; saturate so that the product cannot wrap
    if (t.shape[k] > 0) {
      last += static_cast<unsigned __int128>(t.shape[k] - 1) * static_cast<uint64_t>(t.stride[k]);
    }
    if (t.shape[k] != 1 && static_cast<uint64_t>(t.stride[k]) != expected_stride)
      contiguous = false;
    expected_stride *= static_cast<uint64_t>(t.shape[k]);
  }
  if (numel > count) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "' is larger than its storage"));
  }
  if (numel > 0 && last >= count) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "' reaches past the end of its storage"));
  }
  const uint64_t n = static_cast<uint64_t>(numel);
  out->resize(n * esize);
  if (n == 0) return absl::OkStatus();
  if (contiguous) {
    std::memcpy(out->data(), storage.data() + t.offset * esize, n * esize);
    return absl::OkStatus();
  }
  std::vector<int64_t> index(t.shape.size(), 0);
  for (uint64_t e = 0; e < n; ++e) {
    uint64_t src = static_cast<uint64_t>(t.offset);
    for (size_t k = 0; k < index.size(); ++k) src += static_cast<uint64_t>(index[k]) * t.stride[k];
    std::memcpy(out->data() + e * esize, storage.data() + src * esize, esize);
    for (size_t k = index.size(); k-- > 0;) {
      if (++index[k] < t.shape[k]) break;
      index[k] = 0;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SafetensorsFile>> ReadPytorchBin(std::string bytes,
                                                                const std::string& what) {
  if (bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x80 &&
      static_cast<uint8_t>(bytes[1]) <= 5) {
    return absl::InvalidArgumentError(absl::StrCat(
        what,
        ": this is torch.save's legacy format (before torch 1.6), which Berth does not "
        "read; re-save it with a newer torch, or convert it to safetensors"));
  }
  ASSIGN_OR_RETURN(auto entries, ReadStoredZip(bytes, what));
  // One top-level folder (its name is the file's stem when saved) holds data.pkl and data/N.
  std::string prefix;
  int pickles = 0;
  for (const auto& [name, data] : entries) {
    if (absl::EndsWith(name, "/data.pkl") && name.find('/') == name.size() - 9) {
      prefix = name.substr(0, name.size() - 8);
      ++pickles;
    }
  }
  if (pickles != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": not a torch.save archive (expected one <folder>/data.pkl, found ", pickles, ")"));
  }
  auto byteorder = entries.find(prefix + "byteorder");
  if (byteorder != entries.end() && byteorder->second != "little") {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": saved on a big-endian machine, which Berth does not read"));
  }
  Unpickler unpickler(entries[prefix + "data.pkl"], what + ": data.pkl");
  ASSIGN_OR_RETURN(Value * root, unpickler.Run());
  if (root->kind != Kind::kDict) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": holds no state dict (the pickle is not a dict)"));
  }
  std::vector<std::string> copies(root->dict.size());
  std::vector<TensorToWrite> tensors;
  // Tied weights are one storage named by several tensors; many times the file's size is not.
  const uint64_t max_total = 16 * static_cast<uint64_t>(bytes.size()) + (64 << 10);
  uint64_t total = 0;
  for (size_t k = 0; k < root->dict.size(); ++k) {
    const auto& [key, value] = root->dict[k];
    if (key->kind != Kind::kString) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": a state dict key is not a string"));
    }
    if (value->kind != Kind::kTensor) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": state dict entry '", key->s, "' is not a tensor"));
    }
    auto storage = entries.find(prefix + "data/" + value->storage->s);
    if (storage == entries.end()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": tensor '", key->s,
                                                     "' needs storage data/", value->storage->s,
                                                     ", which the archive lacks"));
    }
    absl::Status copied = CopyTensor(*value, storage->second, key->s, &copies[k]);
    if (!copied.ok()) return absl::InvalidArgumentError(absl::StrCat(what, ": ", copied.message()));
    total += copies[k].size();
    if (total > max_total) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": its tensors add up to many times the file's size"));
    }
    tensors.push_back(
        {key->s, value->storage->dtype, value->shape, copies[k].data(), copies[k].size()});
  }
  auto serialized = SerializeSafetensors(std::move(tensors), {{"format", "pt"}});
  if (!serialized.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", serialized.status().message()));
  }
  return SafetensorsFile::FromBytes(std::move(serialized).value(), what);
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> OpenPytorchBin(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  return ReadPytorchBin(std::move(bytes), path);
}

}  // namespace berth
