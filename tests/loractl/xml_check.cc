#include "tests/loractl/xml_check.h"

#include <cctype>
#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"

namespace lora::loractl::testing {
namespace {

class Parser {
 public:
  explicit Parser(const std::string& text) : text_(text) {}

  absl::StatusOr<std::vector<XmlElement>> Parse() {
    if (text_.compare(0, 5, "<?xml") == 0) {
      const size_t end = text_.find("?>");
      if (end == std::string::npos) return Error("unterminated declaration");
      pos_ = end + 2;
    }
    bool root_seen = false;
    while (true) {
      SkipSpace();
      if (pos_ >= text_.size()) break;
      if (Starts("<!--")) {
        if (absl::Status s = Comment(); !s.ok()) return s;
        continue;
      }
      if (text_[pos_] != '<') return Error("text outside the root element");
      if (root_seen) return Error("a second root element");
      root_seen = true;
      if (absl::Status s = Element(0); !s.ok()) return s;
    }
    if (!root_seen) return Error("no root element");
    return elements_;
  }

 private:
  absl::Status Error(const std::string& what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("XML not well formed at byte ", pos_, ": ", what));
  }

  bool Starts(const char* prefix) const {
    return text_.compare(pos_, std::char_traits<char>::length(prefix),
                         prefix) == 0;
  }

  void SkipSpace() {
    while (pos_ < text_.size() &&
           std::isspace(static_cast<unsigned char>(text_[pos_]))) {
      ++pos_;
    }
  }

  static bool NameStart(char c) {
    return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
           c == ':' || static_cast<unsigned char>(c) >= 0x80;
  }
  static bool NameChar(char c) {
    return NameStart(c) || std::isdigit(static_cast<unsigned char>(c)) ||
           c == '-' || c == '.';
  }

  absl::StatusOr<std::string> Name() {
    if (pos_ >= text_.size() || !NameStart(text_[pos_])) {
      return Error("expected a name");
    }
    const size_t start = pos_;
    while (pos_ < text_.size() && NameChar(text_[pos_])) ++pos_;
    return text_.substr(start, pos_ - start);
  }

  absl::Status Comment() {
    const size_t end = text_.find("-->", pos_ + 4);
    if (end == std::string::npos) return Error("unterminated comment");
    pos_ = end + 3;
    return absl::OkStatus();
  }

  // Text up to `stop` with entity references checked and resolved.
  absl::StatusOr<std::string> CharData(char stop) {
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != stop) {
      const char c = text_[pos_];
      if (c == '<') return Error("'<' in text or attribute value");
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' &&
          c != '\r') {
        return Error("control character");
      }
      if (c != '&') {
        out.push_back(c);
        ++pos_;
        continue;
      }
      const size_t semi = text_.find(';', pos_);
      if (semi == std::string::npos || semi - pos_ > 12) {
        return Error("bare '&'");
      }
      const std::string entity = text_.substr(pos_ + 1, semi - pos_ - 1);
      static const std::map<std::string, char> kNamed = {{"amp", '&'},
                                                         {"lt", '<'},
                                                         {"gt", '>'},
                                                         {"quot", '"'},
                                                         {"apos", '\''}};
      if (auto it = kNamed.find(entity); it != kNamed.end()) {
        out.push_back(it->second);
      } else if (!entity.empty() && entity[0] == '#') {
        const bool hex = entity.size() > 1 && entity[1] == 'x';
        const std::string digits = entity.substr(hex ? 2 : 1);
        char* end = nullptr;
        std::strtol(digits.c_str(), &end, hex ? 16 : 10);
        if (digits.empty() || *end != '\0')
          return Error("bad character reference");
        out.push_back('?');
      } else {
        return Error(absl::StrCat("unknown entity &", entity, ";"));
      }
      pos_ = semi + 1;
    }
    return out;
  }

  absl::Status Element(int depth) {
    ++pos_;  // '<'
    absl::StatusOr<std::string> name = Name();
    if (!name.ok()) return name.status();
    XmlElement element;
    element.name = *name;
    element.depth = depth;
    const size_t index = elements_.size();
    elements_.push_back(element);
    while (true) {
      const size_t before = pos_;
      SkipSpace();
      if (pos_ >= text_.size()) return Error("unterminated start tag");
      if (Starts("/>")) {
        pos_ += 2;
        return absl::OkStatus();
      }
      if (text_[pos_] == '>') {
        ++pos_;
        break;
      }
      if (pos_ == before) return Error("attributes must be separated by space");
      absl::StatusOr<std::string> attribute = Name();
      if (!attribute.ok()) return attribute.status();
      SkipSpace();
      if (pos_ >= text_.size() || text_[pos_] != '=')
        return Error("expected '='");
      ++pos_;
      SkipSpace();
      if (pos_ >= text_.size() || (text_[pos_] != '"' && text_[pos_] != '\'')) {
        return Error("attribute value not quoted");
      }
      const char quote = text_[pos_++];
      absl::StatusOr<std::string> value = CharData(quote);
      if (!value.ok()) return value.status();
      if (pos_ >= text_.size()) return Error("unterminated attribute value");
      ++pos_;
      if (!elements_[index].attributes.emplace(*attribute, *value).second) {
        return Error(absl::StrCat("attribute ", *attribute, " given twice"));
      }
    }
    // Content.
    while (true) {
      absl::StatusOr<std::string> text = CharData('<');
      if (!text.ok()) return text.status();
      if (pos_ >= text_.size()) {
        return Error(absl::StrCat("element <", *name, "> not closed"));
      }
      if (Starts("<!--")) {
        if (absl::Status s = Comment(); !s.ok()) return s;
        continue;
      }
      if (Starts("</")) {
        pos_ += 2;
        absl::StatusOr<std::string> closing = Name();
        if (!closing.ok()) return closing.status();
        if (*closing != *name) {
          return Error(absl::StrCat("</", *closing, "> closes <", *name, ">"));
        }
        SkipSpace();
        if (pos_ >= text_.size() || text_[pos_] != '>')
          return Error("expected '>'");
        ++pos_;
        return absl::OkStatus();
      }
      if (absl::Status s = Element(depth + 1); !s.ok()) return s;
    }
  }

  const std::string& text_;
  size_t pos_ = 0;
  std::vector<XmlElement> elements_;
};

}  // namespace

absl::StatusOr<std::vector<XmlElement>> ParseXml(const std::string& text) {
  return Parser(text).Parse();
}

}  // namespace lora::loractl::testing
