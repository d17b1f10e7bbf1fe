// A minimal XML 1.0 well-formedness checker for tests of loractl's SVG
// output: an optional <?xml ...?> declaration, comments, elements with
// quoted attributes (no attribute twice), text with the five predefined
// entities and numeric character references, properly nested tags and one
// root element. No DTDs, CDATA or namespaces beyond treating "a:b" as a
// name. Returns the elements in document order.
#ifndef LORA_SWEEP_TESTS_LORACTL_XML_CHECK_H_
#define LORA_SWEEP_TESTS_LORACTL_XML_CHECK_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lora::loractl::testing {

struct XmlElement {
  std::string name;
  std::map<std::string, std::string> attributes;  // entities resolved
  int depth = 0;                                  // 0 for the root
};

// InvalidArgument naming the byte offset of the first problem.
absl::StatusOr<std::vector<XmlElement>> ParseXml(const std::string& text);

}  // namespace lora::loractl::testing

#endif  // LORA_SWEEP_TESTS_LORACTL_XML_CHECK_H_
