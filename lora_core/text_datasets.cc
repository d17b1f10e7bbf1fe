#include "lora_core/text_datasets.h"

#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "lora_core/splitmix64.h"
#include "lora_core/utf8.h"

namespace lora::core {
namespace {

constexpr absl::string_view kUtf8Bom = "\xEF\xBB\xBF";

int LineAt(absl::string_view text, size_t offset) {
  int line = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') ++line;
  }
  return line;
}

absl::StatusOr<std::string> ReadNonEmpty(const std::string& path) {
  LORA_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  if (absl::StripAsciiWhitespace(absl::StripPrefix(text, kUtf8Bom)).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": file is empty"));
  }
  return text;
}

absl::StatusOr<std::string> ReadNonEmptyUtf8(const std::string& path) {
  LORA_ASSIGN_OR_RETURN(std::string text, ReadNonEmpty(path));
  LORA_RETURN_IF_ERROR(CheckUtf8(text, path));
  return text;
}

// ParseCsv checks the UTF-8 itself: one pass over the file, not two.
absl::StatusOr<std::vector<CsvRecord>> ReadCsvFile(const std::string& path) {
  LORA_ASSIGN_OR_RETURN(std::string text, ReadNonEmpty(path));
  return ParseCsv(text, path);
}

template <typename T>
const T& Pick(const std::vector<T>& items, SplitMix64& random) {
  return items[random.Below(items.size())];
}

}  // namespace

absl::Status CheckUtf8(absl::string_view text, const std::string& source) {
  const size_t bad = FirstInvalidUtf8(text);
  if (bad == absl::string_view::npos) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      source, ":", LineAt(text, bad), ": invalid UTF-8 (byte 0x",
      absl::Hex(static_cast<unsigned char>(text[bad]), absl::kZeroPad2),
      " at offset ", bad, ")"));
}

absl::StatusOr<std::vector<CsvRecord>> ParseCsv(absl::string_view text,
                                                const std::string& source) {
  LORA_RETURN_IF_ERROR(CheckUtf8(text, source));
  size_t start = absl::StartsWith(text, kUtf8Bom) ? kUtf8Bom.size() : 0;
  std::vector<CsvRecord> records;
  int line = 1;
  size_t i = start;
  while (i < text.size()) {
    // Skip blank lines between records.
    if (text[i] == '\n' || text[i] == '\r') {
      if (text[i] == '\n') ++line;
      ++i;
      continue;
    }
    CsvRecord record;
    record.line = line;
    while (true) {
      std::string field;
      if (i < text.size() && text[i] == '"') {
        const int quote_line = line;
        ++i;
        bool closed = false;
        while (i < text.size()) {
          if (text[i] == '"') {
            if (i + 1 < text.size() && text[i + 1] == '"') {
              field.push_back('"');
              i += 2;
            } else {
              ++i;
              closed = true;
              break;
            }
          } else {
            if (text[i] == '\n') ++line;
            field.push_back(text[i++]);
          }
        }
        if (!closed) {
          return absl::InvalidArgumentError(absl::StrCat(
              source, ":", quote_line, ": quoted field is never closed"));
        }
        if (i < text.size() && text[i] != ',' && text[i] != '\n' &&
            text[i] != '\r') {
          return absl::InvalidArgumentError(
              absl::StrCat(source, ":", line, ": unexpected character '",
                           text.substr(i, 1), "' after a closing quote"));
        }
      } else {
        while (i < text.size() && text[i] != ',' && text[i] != '\n' &&
               text[i] != '\r') {
          field.push_back(text[i++]);
        }
      }
      record.fields.push_back(std::move(field));
      if (i < text.size() && text[i] == ',') {
        ++i;
        continue;
      }
      break;
    }
    if (i < text.size() && text[i] == '\r') ++i;
    if (i < text.size() && text[i] == '\n') {
      ++i;
      ++line;
    }
    records.push_back(std::move(record));
  }
  return records;
}

absl::StatusOr<std::vector<LabeledText>> ReadSst2Tsv(const std::string& path) {
  LORA_ASSIGN_OR_RETURN(std::string text, ReadNonEmptyUtf8(path));
  std::vector<LabeledText> rows;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_number == 1) {
      line = absl::StripPrefix(line, kUtf8Bom);
      if (line != "sentence\tlabel") {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ":1: expected the header \"sentence<TAB>label\", got \"",
            line, "\""));
      }
      continue;
    }
    if (line.empty()) continue;
    std::vector<absl::string_view> columns = absl::StrSplit(line, '\t');
    if (columns.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_number,
                       ": expected 2 tab-separated "
                       "columns, got ",
                       columns.size()));
    }
    if (columns[1] != "0" && columns[1] != "1") {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_number, ": label must be 0 or 1, got \"",
                       columns[1], "\""));
    }
    rows.push_back(LabeledText{std::string(columns[0]),
                               columns[1] == "1" ? 1 : 0, line_number});
  }
  if (rows.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no examples after the header"));
  }
  return rows;
}

absl::StatusOr<std::vector<LabeledText>> ReadPolarityCsv(
    const std::string& path) {
  LORA_ASSIGN_OR_RETURN(std::vector<CsvRecord> records, ReadCsvFile(path));
  std::vector<LabeledText> rows;
  for (CsvRecord& record : records) {
    if (record.fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", record.line,
                       ": expected 2 columns (\"label\",\"text\"), "
                       "got ",
                       record.fields.size()));
    }
    const std::string& label = record.fields[0];
    if (label != "1" && label != "-1") {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", record.line,
                       ": label must be 1 or -1, got \"", label, "\""));
    }
    rows.push_back(
        LabeledText{std::string(absl::StripAsciiWhitespace(record.fields[1])),
                    label == "1" ? 1 : 0, record.line});
  }
  return rows;
}

LabeledSplits SplitPolarity(const std::vector<LabeledText>& rows) {
  LabeledSplits splits;
  for (size_t i = 0; i < rows.size(); ++i) {
    (i % 4 == 3 ? splits.validation : splits.train).push_back(rows[i]);
  }
  return splits;
}

absl::StatusOr<std::vector<std::string>> ReadCorpusDocuments(
    const std::string& path) {
  if (!absl::EndsWith(path, ".csv")) {
    LORA_ASSIGN_OR_RETURN(std::string text, ReadNonEmptyUtf8(path));
    return std::vector<std::string>{
        std::string(absl::StripPrefix(text, kUtf8Bom))};
  }
  // The Pang & Lee reviews CSV: "label","text" rows like the sentences.
  LORA_ASSIGN_OR_RETURN(std::vector<LabeledText> rows, ReadPolarityCsv(path));
  std::vector<std::string> documents;
  for (LabeledText& row : rows) documents.push_back(std::move(row.text));
  return documents;
}

std::vector<std::vector<int64_t>> PackLanguageModelBlocks(
    const std::vector<std::string>& documents, const BpeTokenizer& tokenizer,
    int64_t block_size) {
  std::vector<int64_t> stream;
  for (const std::string& document : documents) {
    std::vector<int64_t> ids = tokenizer.Encode(document);
    stream.insert(stream.end(), ids.begin(), ids.end());
    stream.push_back(tokenizer.eos_id());
  }
  std::vector<std::vector<int64_t>> blocks;
  if (block_size < 1) return blocks;
  for (size_t start = 0; start + block_size <= stream.size();
       start += block_size) {
    blocks.emplace_back(stream.begin() + start,
                        stream.begin() + start + block_size);
  }
  return blocks;
}

absl::StatusOr<std::vector<E2eExample>> ReadE2eCsv(const std::string& path) {
  LORA_ASSIGN_OR_RETURN(std::vector<CsvRecord> records, ReadCsvFile(path));
  if (records.empty() || records[0].fields.size() != 2 ||
      records[0].fields[0] != "mr" || records[0].fields[1] != "ref") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":1: expected the header \"mr,ref\""));
  }
  std::vector<E2eExample> examples;
  std::map<std::string, size_t> index;
  for (size_t r = 1; r < records.size(); ++r) {
    const CsvRecord& record = records[r];
    if (record.fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", record.line,
                       ": expected 2 columns (mr,ref), "
                       "got ",
                       record.fields.size()));
    }
    if (record.fields[0].empty() || record.fields[1].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", record.line,
                       ": empty meaning representation or "
                       "reference"));
    }
    auto [it, inserted] = index.emplace(record.fields[0], examples.size());
    if (inserted) examples.push_back(E2eExample{record.fields[0], {}});
    examples[it->second].references.push_back(record.fields[1]);
  }
  if (examples.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no rows after the header"));
  }
  return examples;
}

namespace {

struct E2eSlots {
  std::string name, eat_type, food, price, rating, area, family, near;
};

std::string MeaningRepresentation(const E2eSlots& s) {
  std::vector<std::string> parts = {absl::StrCat("name[", s.name, "]"),
                                    absl::StrCat("eatType[", s.eat_type, "]")};
  if (!s.food.empty()) parts.push_back(absl::StrCat("food[", s.food, "]"));
  if (!s.price.empty()) {
    parts.push_back(absl::StrCat("priceRange[", s.price, "]"));
  }
  if (!s.rating.empty()) {
    parts.push_back(absl::StrCat("customer rating[", s.rating, "]"));
  }
  if (!s.area.empty()) parts.push_back(absl::StrCat("area[", s.area, "]"));
  if (!s.family.empty()) {
    parts.push_back(absl::StrCat("familyFriendly[", s.family, "]"));
  }
  if (!s.near.empty()) parts.push_back(absl::StrCat("near[", s.near, "]"));
  return absl::StrJoin(parts, ", ");
}

std::string Article(const std::string& word) {
  return std::string(1, word[0]).find_first_of("AEIOUaeiou") == 0 ? "an" : "a";
}

std::string PricePhrase(const std::string& price) {
  if (absl::StartsWith(price, "less") || absl::StartsWith(price, "more") ||
      absl::StartsWith(price, "\xC2\xA3")) {
    return absl::StrCat("prices ", price);
  }
  return absl::StrCat(price, " prices");
}

std::string RatingPhrase(const std::string& rating) {
  return absl::StrCat(rating, " customer rating");
}

// Three ways of saying the same MR; slots that are absent are left out.
std::string Render(const E2eSlots& s, int style) {
  std::vector<std::string> sentences;
  const std::string food = s.food.empty() ? "" : s.food + " ";
  switch (style % 3) {
    case 0: {
      std::string first = absl::StrCat(
          s.name, " is ", Article(food + s.eat_type), " ", food, s.eat_type);
      if (!s.area.empty()) absl::StrAppend(&first, " in the ", s.area);
      if (!s.near.empty()) absl::StrAppend(&first, " near ", s.near);
      sentences.push_back(first + ".");
      std::vector<std::string> has;
      if (!s.price.empty()) has.push_back(PricePhrase(s.price));
      if (!s.rating.empty()) has.push_back("a " + RatingPhrase(s.rating));
      if (!has.empty()) {
        sentences.push_back(
            absl::StrCat("It has ", absl::StrJoin(has, " and "), "."));
      }
      if (!s.family.empty()) {
        sentences.push_back(s.family == "yes" ? "It is family friendly."
                                              : "It is not family friendly.");
      }
      break;
    }
    case 1: {
      std::string first = absl::StrCat("Come to ", s.name, ", ",
                                       Article(s.eat_type), " ", s.eat_type);
      if (!s.food.empty())
        absl::StrAppend(&first, " serving ", s.food, " food");
      if (!s.area.empty()) absl::StrAppend(&first, " in the ", s.area);
      sentences.push_back(first + ".");
      if (!s.family.empty()) {
        sentences.push_back(s.family == "yes" ? "Children are welcome."
                                              : "It is not for children.");
      }
      if (!s.price.empty() || !s.rating.empty()) {
        std::string second = "Customers";
        if (!s.rating.empty()) {
          absl::StrAppend(&second, " rate it ", s.rating);
          if (!s.price.empty()) absl::StrAppend(&second, " and");
        }
        if (!s.price.empty()) {
          absl::StrAppend(&second, " pay ", PricePhrase(s.price));
        }
        sentences.push_back(second + ".");
      }
      if (!s.near.empty()) {
        sentences.push_back(absl::StrCat("You can find it near ", s.near, "."));
      }
      break;
    }
    default: {
      std::string first = "There is ";
      std::string kind = s.eat_type;
      if (!s.family.empty()) {
        kind = (s.family == "yes" ? "family friendly " : "adults only ") + kind;
      }
      absl::StrAppend(&first, Article(kind), " ", kind, " called ", s.name);
      if (!s.food.empty())
        absl::StrAppend(&first, " that offers ", s.food, " dishes");
      sentences.push_back(first + ".");
      std::vector<std::string> details;
      if (!s.price.empty()) details.push_back("its " + PricePhrase(s.price));
      if (!s.rating.empty()) details.push_back("a " + RatingPhrase(s.rating));
      if (!details.empty()) {
        sentences.push_back(absl::StrCat("It is known for ",
                                         absl::StrJoin(details, " and "), "."));
      }
      if (!s.area.empty() || !s.near.empty()) {
        std::string where = "It is";
        if (!s.area.empty()) absl::StrAppend(&where, " in the ", s.area);
        if (!s.near.empty()) absl::StrAppend(&where, " close to ", s.near);
        sentences.push_back(where + ".");
      }
      break;
    }
  }
  return absl::StrJoin(sentences, " ");
}

}  // namespace

std::vector<E2eExample> GenerateE2e(int count, uint64_t seed,
                                    int references_per_mr) {
  static const std::vector<std::string> kNames = {
      "The Eagle",     "The Mill",    "Loch Fyne",       "The Golden Curry",
      "Blue Spice",    "The Punter",  "Zizzi",           "Aromi",
      "The Wrestlers", "Fitzbillies", "Cotto",           "The Phoenix",
      "Strada",        "Giraffe",     "The Cricketers",  "Alimentum",
      "Clowns",        "Green Man",   "The Olive Grove", "Wildwood"};
  static const std::vector<std::string> kEatTypes = {"restaurant",
                                                     "coffee shop", "pub"};
  static const std::vector<std::string> kFoods = {
      "English", "French",   "Italian",  "Chinese",
      "Indian",  "Japanese", "Fast food"};
  static const std::vector<std::string> kPrices = {"cheap",
                                                   "moderate",
                                                   "high",
                                                   "less than \xC2\xA3"
                                                   "20",
                                                   "\xC2\xA3"
                                                   "20-25",
                                                   "more than \xC2\xA3"
                                                   "30"};
  static const std::vector<std::string> kRatings = {
      "low", "average", "high", "1 out of 5", "3 out of 5", "5 out of 5"};
  static const std::vector<std::string> kAreas = {"city centre", "riverside"};
  static const std::vector<std::string> kFamily = {"yes", "no"};
  static const std::vector<std::string> kNear = {"Burger King",
                                                 "Caf\xC3\xA9 Rouge",
                                                 "The Bakers",
                                                 "Raja Indian Cuisine",
                                                 "Express by Holiday Inn",
                                                 "Crowne Plaza Hotel",
                                                 "The Portland Arms",
                                                 "Avalon",
                                                 "Ranch",
                                                 "Yippee Noodle Bar",
                                                 "The Sorrento",
                                                 "All Bar One"};
  SplitMix64 random(seed);
  std::vector<E2eExample> examples;
  std::set<std::string> seen;
  // The slot space holds millions of MRs; the attempt bound only guards
  // against a count larger than it.
  for (int attempt = 0; static_cast<int>(examples.size()) < count &&
                        attempt < count * 100 + 1000;
       ++attempt) {
    E2eSlots slots;
    slots.name = Pick(kNames, random);
    slots.eat_type = Pick(kEatTypes, random);
    auto maybe = [&random](const std::vector<std::string>& values) {
      const std::string& value = Pick(values, random);
      return random.Below(2) == 0 ? value : std::string();
    };
    slots.food = maybe(kFoods);
    slots.price = maybe(kPrices);
    slots.rating = maybe(kRatings);
    slots.area = maybe(kAreas);
    slots.family = maybe(kFamily);
    slots.near = maybe(kNear);
    E2eExample example{MeaningRepresentation(slots), {}};
    if (!seen.insert(example.meaning_representation).second) continue;
    const int first_style = static_cast<int>(random.Below(3));
    for (int r = 0; r < references_per_mr; ++r) {
      example.references.push_back(Render(slots, first_style + r));
    }
    examples.push_back(std::move(example));
  }
  return examples;
}

std::vector<TokenizedExample> TokenizeLabeled(
    const std::vector<LabeledText>& rows, const BpeTokenizer& tokenizer,
    int64_t max_length) {
  std::vector<TokenizedExample> examples;
  examples.reserve(rows.size());
  for (const LabeledText& row : rows) {
    TokenizedExample example;
    example.input_ids =
        tokenizer.EncodeForModel(row.text, max_length).input_ids;
    example.label = row.label;
    examples.push_back(std::move(example));
  }
  return examples;
}

std::string E2ePrompt(const std::string& meaning_representation) {
  return meaning_representation + " =>";
}

std::vector<TokenizedExample> TokenizeE2e(
    const std::vector<E2eExample>& examples, const BpeTokenizer& tokenizer,
    int64_t max_length) {
  std::vector<TokenizedExample> out;
  for (size_t group = 0; group < examples.size(); ++group) {
    const std::vector<int64_t> prompt =
        tokenizer.Encode(E2ePrompt(examples[group].meaning_representation));
    for (const std::string& reference : examples[group].references) {
      TokenizedExample example;
      example.input_ids = prompt;
      std::vector<int64_t> target = tokenizer.Encode(" " + reference);
      example.input_ids.insert(example.input_ids.end(), target.begin(),
                               target.end());
      example.input_ids.push_back(tokenizer.eos_id());
      if (static_cast<int64_t>(example.input_ids.size()) > max_length) {
        example.input_ids.resize(std::max<int64_t>(max_length, 1));
      }
      example.prompt_length =
          std::min<int64_t>(prompt.size(), example.input_ids.size());
      example.group = static_cast<int64_t>(group);
      out.push_back(std::move(example));
    }
  }
  return out;
}

}  // namespace lora::core
