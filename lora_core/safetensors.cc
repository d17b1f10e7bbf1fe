#include "lora_core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file_util.h"
#include "base/json_util.h"
#include "base/status_macros.h"

namespace lora::core {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; this code copies bytes as "
              "they are");

using Json = nlohmann::json;

constexpr char kMetadataKey[] = "__metadata__";

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16, DType::kI64}) {
    if (DTypeName(dtype) == name) return dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported dtype \"", name, "\" (supported: F32, F16, BF16, I64)"));
}

uint64_t ReadLittleEndian64(const char* bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) {
    value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  }
  return value;
}

// Parses JSON and reports the first key repeated within one object
// (nlohmann keeps the last silently; a safetensors header must not repeat
// names).
Json ParseRejectingDuplicateKeys(absl::string_view text,
                                 std::string* duplicate) {
  std::vector<std::set<std::string>> keys_per_depth;
  Json::parser_callback_t callback = [&](int depth, Json::parse_event_t event,
                                         Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
        keys_per_depth.resize(depth + 1);
        keys_per_depth[depth].clear();
        break;
      case Json::parse_event_t::key:
        if (depth >= 1 &&
            static_cast<size_t>(depth - 1) < keys_per_depth.size()) {
          auto& keys = keys_per_depth[depth - 1];
          const std::string key = parsed.get<std::string>();
          if (!keys.insert(key).second && duplicate->empty()) {
            *duplicate = key;
          }
        }
        break;
      default:
        break;
    }
    return true;
  };
  return Json::parse(text.begin(), text.end(), callback,
                     /*allow_exceptions=*/false);
}

}  // namespace

std::string ShapeText(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::string DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kI64:
      return "I64";
  }
  return "?";
}

int64_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
      return 2;
    case DType::kI64:
      return 8;
  }
  return 0;
}

absl::StatusOr<std::unique_ptr<SafetensorsReader>> SafetensorsReader::Open(
    const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    std::string message =
        absl::StrCat(path, ": cannot open: ", std::strerror(error));
    return error == ENOENT ? absl::NotFoundError(message)
                           : absl::InternalError(message);
  }
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat(path, ": cannot stat"));
  }
  std::unique_ptr<SafetensorsReader> reader(new SafetensorsReader());
  reader->source_ = path;
  const size_t size = static_cast<size_t>(info.st_size);
  if (size > 0) {
    void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapping == MAP_FAILED) {
      ::close(fd);
      return absl::InternalError(
          absl::StrCat(path, ": cannot map: ", std::strerror(errno)));
    }
    reader->mapping_ = mapping;
    reader->mapping_size_ = size;
  }
  ::close(fd);  // The mapping stays valid.
  LORA_RETURN_IF_ERROR(reader->Parse(absl::string_view(
      static_cast<const char*>(reader->mapping_), reader->mapping_size_)));
  return reader;
}

absl::StatusOr<std::unique_ptr<SafetensorsReader>>
SafetensorsReader::FromBuffer(absl::string_view bytes,
                              const std::string& source) {
  std::unique_ptr<SafetensorsReader> reader(new SafetensorsReader());
  reader->source_ = source;
  LORA_RETURN_IF_ERROR(reader->Parse(bytes));
  return reader;
}

SafetensorsReader::~SafetensorsReader() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_size_);
}

const SafetensorsTensor* SafetensorsReader::Find(absl::string_view name) const {
  for (const SafetensorsTensor& tensor : tensors_) {
    if (tensor.name == name) return &tensor;
  }
  return nullptr;
}

absl::Status SafetensorsReader::Parse(absl::string_view bytes) {
  auto error = [this](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", parts...));
  };
  if (bytes.size() < 8) {
    return error("file is ", bytes.size(),
                 " bytes, shorter than the 8-byte header length");
  }
  const uint64_t header_length = ReadLittleEndian64(bytes.data());
  if (header_length > kMaxSafetensorsHeaderBytes) {
    return error("header length ", header_length, " exceeds the limit of ",
                 kMaxSafetensorsHeaderBytes, " bytes");
  }
  if (header_length > bytes.size() - 8) {
    return error("header length ", header_length,
                 " runs past the end of the file (", bytes.size(), " bytes)");
  }
  const absl::string_view header_text = bytes.substr(8, header_length);
  const uint64_t data_size = bytes.size() - 8 - header_length;
  const uint8_t* data =
      reinterpret_cast<const uint8_t*>(bytes.data()) + 8 + header_length;

  // {"name": {"shape": [...]}} nests three levels; anything deeper is not a
  // header, and parsing it could exhaust the stack.
  if (const int depth = JsonNestingDepth(header_text); depth > 3) {
    return error("header nests ", depth, " levels deep (a header has 3)");
  }
  std::string duplicate;
  Json header = ParseRejectingDuplicateKeys(header_text, &duplicate);
  if (header.is_discarded()) return error("header is not valid JSON");
  if (!header.is_object()) return error("header is not a JSON object");
  if (!duplicate.empty()) {
    return error("header repeats the key \"", duplicate, "\"");
  }

  struct Entry {
    SafetensorsTensor tensor;
    uint64_t begin;
    uint64_t end;
  };
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const Json& value = it.value();
    if (name == kMetadataKey) {
      if (!value.is_object()) return error("__metadata__ is not an object");
      for (auto meta = value.begin(); meta != value.end(); ++meta) {
        if (!meta.value().is_string()) {
          return error("__metadata__ entry \"", meta.key(),
                       "\" is not a string");
        }
        metadata_[meta.key()] = meta.value().get<std::string>();
      }
      continue;
    }
    auto tensor_error = [&](auto&&... parts) {
      return error("tensor \"", name, "\": ", parts...);
    };
    if (!value.is_object()) return tensor_error("entry is not an object");
    for (auto field = value.begin(); field != value.end(); ++field) {
      if (field.key() != "dtype" && field.key() != "shape" &&
          field.key() != "data_offsets") {
        return tensor_error("unknown field \"", field.key(), "\"");
      }
    }
    Entry entry;
    entry.tensor.name = name;
    auto dtype = value.find("dtype");
    if (dtype == value.end() || !dtype->is_string()) {
      return tensor_error("missing or non-string dtype");
    }
    absl::StatusOr<DType> parsed_dtype = ParseDType(dtype->get<std::string>());
    if (!parsed_dtype.ok())
      return tensor_error(parsed_dtype.status().message());
    entry.tensor.dtype = *parsed_dtype;
    auto shape = value.find("shape");
    if (shape == value.end() || !shape->is_array()) {
      return tensor_error("missing or non-array shape");
    }
    uint64_t elements = 1;
    for (const Json& dim : *shape) {
      if (!dim.is_number_unsigned()) {
        return tensor_error("shape ", JsonExcerpt(*shape),
                            " has a dimension that is not a non-negative "
                            "integer");
      }
      const uint64_t extent = dim.get<uint64_t>();
      if (extent != 0 &&
          elements > std::numeric_limits<int64_t>::max() / extent) {
        return tensor_error("shape ", JsonExcerpt(*shape), " is too large");
      }
      elements *= extent;
      entry.tensor.shape.push_back(static_cast<int64_t>(extent));
    }
    auto offsets = value.find("data_offsets");
    if (offsets == value.end() || !offsets->is_array() ||
        offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
        !(*offsets)[1].is_number_unsigned()) {
      return tensor_error(
          "data_offsets must be two non-negative integers [begin, end]");
    }
    entry.begin = (*offsets)[0].get<uint64_t>();
    entry.end = (*offsets)[1].get<uint64_t>();
    if (entry.begin > entry.end) {
      return tensor_error("data_offsets [", entry.begin, ", ", entry.end,
                          "] end before they begin");
    }
    if (entry.end > data_size) {
      return tensor_error("data_offsets [", entry.begin, ", ", entry.end,
                          "] are out of range: the data section has ",
                          data_size, " bytes");
    }
    const int64_t element_size = DTypeSize(entry.tensor.dtype);
    if (elements > std::numeric_limits<uint64_t>::max() / element_size) {
      return tensor_error("shape ", JsonExcerpt(*shape), " is too large");
    }
    const uint64_t expected = elements * element_size;
    if (entry.end - entry.begin != expected) {
      return tensor_error("shape ", ShapeText(entry.tensor.shape), " of ",
                          DTypeName(entry.tensor.dtype), " needs ", expected,
                          " bytes, but data_offsets [", entry.begin, ", ",
                          entry.end, "] hold ", entry.end - entry.begin);
    }
    entry.tensor.num_elements = static_cast<int64_t>(elements);
    entry.tensor.size_bytes = expected;
    entry.tensor.data = data + entry.begin;
    entries.push_back(std::move(entry));
  }
  std::stable_sort(
      entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
      });
  uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const Entry& entry : entries) {
    if (entry.begin < covered) {
      return error("tensors \"", *previous, "\" and \"", entry.tensor.name,
                   "\" overlap (\"", *previous, "\" ends at ", covered, ", \"",
                   entry.tensor.name, "\" starts at ", entry.begin, ")");
    }
    if (entry.begin > covered) {
      return error("hole of ", entry.begin - covered, " bytes before tensor \"",
                   entry.tensor.name, "\" (data must be packed without gaps)");
    }
    covered = entry.end;
    previous = &entry.tensor.name;
  }
  if (covered != data_size) {
    return error(data_size - covered,
                 " bytes at the end of the data section belong to no tensor");
  }
  tensors_.clear();
  for (Entry& entry : entries) tensors_.push_back(std::move(entry.tensor));
  return absl::OkStatus();
}

absl::Status WriteSafetensors(
    const std::string& path, std::vector<SafetensorsTensorToWrite> tensors,
    const std::map<std::string, std::string>& metadata) {
  std::sort(tensors.begin(), tensors.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  Json header = Json::object();
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SafetensorsTensorToWrite& tensor = tensors[i];
    if (tensor.name == kMetadataKey) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": \"__metadata__\" is not a tensor name"));
    }
    if (i > 0 && tensors[i - 1].name == tensor.name) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor \"", tensor.name, "\" given twice"));
    }
    uint64_t elements = 1;
    for (int64_t dim : tensor.shape) {
      if (dim < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": tensor \"", tensor.name, "\": shape ",
                         ShapeText(tensor.shape), " has a negative dimension"));
      }
      elements *= static_cast<uint64_t>(dim);
    }
    if (elements * DTypeSize(tensor.dtype) != tensor.size_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor \"", tensor.name, "\": shape ",
                       ShapeText(tensor.shape), " of ", DTypeName(tensor.dtype),
                       " needs ", elements * DTypeSize(tensor.dtype),
                       " bytes, got ", tensor.size_bytes));
    }
    header[tensor.name] = {
        {"dtype", DTypeName(tensor.dtype)},
        {"shape", tensor.shape},
        {"data_offsets", {offset, offset + tensor.size_bytes}}};
    offset += tensor.size_bytes;
  }
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::string header_text = header.dump();
  // Pad so the data section starts 8-byte aligned, as the reference writer.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  std::string bytes;
  bytes.reserve(8 + header_text.size() + offset);
  uint64_t length = header_text.size();
  for (int i = 0; i < 8; ++i) {
    bytes.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  }
  bytes += header_text;
  for (const SafetensorsTensorToWrite& tensor : tensors) {
    bytes.append(static_cast<const char*>(tensor.data), tensor.size_bytes);
  }
  return WriteFileAtomically(path, bytes);
}

}  // namespace lora::core
