// JSON to values and values to JSON, the latter byte for byte as CPython's
// json.dumps (Lib/json/encoder.py) writes it.
#include "tokenizer/jinja_json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja_unicode.h"

namespace strata::jinja {
namespace {

Value from_json_at(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxDepth) raise("RecursionError", cat("the JSON input nests deeper than ", std::to_string(kMaxDepth)));
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value::none();
    case nlohmann::ordered_json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value::integer(static_cast<int64_t>(u));
      return Value::real(static_cast<double>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value::real(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value::str(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(from_json_at(item, depth + 1));
      return Value::seq(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      // Duplicate keys cannot occur in an ordered_json object.
      std::vector<std::pair<Value, Value>> entries;
      entries.reserve(j.size());
      for (const auto& [k, v] : j.items()) entries.emplace_back(Value::str(k), from_json_at(v, depth + 1));
      return Value::dict(std::move(entries));
    }
    default:
      raise("TypeError", "unsupported JSON value (binary data)");
  }
}

class Encoder {
 public:
  Encoder(bool ensure_ascii, std::string indent, bool has_indent, std::string_view item_sep, std::string_view key_sep,
          bool sort_keys)
      : ensure_ascii_(ensure_ascii),
        indent_(std::move(indent)),
        has_indent_(has_indent),
        item_sep_(item_sep),
        key_sep_(key_sep),
        sort_keys_(sort_keys) {}

  void encode(const Value& v, int level) {
    if (level > kMaxDepth) raise("RecursionError", "maximum recursion depth exceeded while encoding a JSON object");
    switch (v.kind()) {
      case Kind::None:
        out += "null";
        return;
      case Kind::Bool:
        out += v.as_bool() ? "true" : "false";
        return;
      case Kind::Int:
        out += std::to_string(v.as_int());
        return;
      case Kind::Float:
        out += float_text(v.as_float());
        return;
      case Kind::Str:
        encode_string(v.as_str());
        return;
      case Kind::Seq:
        if (v.is_seq(SeqType::List) || v.is_seq(SeqType::Tuple)) {
          encode_array(v.as_seq().items, level);
          return;
        }
        break;
      case Kind::Dict:
        encode_object(v.as_dict(), level);
        return;
      default:
        break;
    }
    raise("TypeError", cat("Object of type ", type_name(v), " is not JSON serializable"));
  }

  std::string out;

 private:
  bool ensure_ascii_;
  std::string indent_;
  bool has_indent_;
  std::string_view item_sep_, key_sep_;
  bool sort_keys_;

  static std::string float_text(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    return float_repr(d);
  }

  void newline(int level) {
    out += '\n';
    for (int i = 0; i < level; ++i) out += indent_;
  }

  void encode_array(const std::vector<Value>& items, int level) {
    if (items.empty()) {
      out += "[]";
      return;
    }
    out += '[';
    if (has_indent_) newline(level + 1);
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) {
        out += item_sep_;
        if (has_indent_) newline(level + 1);
      }
      encode(items[i], level + 1);
    }
    if (has_indent_) newline(level);
    out += ']';
  }

  // json's key coercion: str as is, float/int/bool/None by their JSON text.
  static std::string key_text(const Value& k) {
    switch (k.kind()) {
      case Kind::Str:
        return k.as_str();
      case Kind::Float:
        return float_text(k.as_float());
      case Kind::Bool:
        return k.as_bool() ? "true" : "false";
      case Kind::Int:
        return std::to_string(k.as_int());
      case Kind::None:
        return "null";
      default:
        raise("TypeError", cat("keys must be str, int, float, bool or None, not ", type_name(k)));
    }
  }

  void encode_object(const DictObj& d, int level) {
    if (d.entries.empty()) {
      out += "{}";
      return;
    }
    std::vector<const std::pair<Value, Value>*> entries;
    for (const auto& e : d.entries) entries.push_back(&e);
    if (sort_keys_) {
      std::stable_sort(entries.begin(), entries.end(),
                       [](const auto* a, const auto* b) { return order(a->first, b->first, "<"); });
    }
    out += '{';
    if (has_indent_) newline(level + 1);
    bool first = true;
    for (const auto* e : entries) {
      if (!first) {
        out += item_sep_;
        if (has_indent_) newline(level + 1);
      }
      first = false;
      encode_string(key_text(e->first));
      out += key_sep_;
      encode(e->second, level + 1);
    }
    if (has_indent_) newline(level);
    out += '}';
  }

  void encode_string(std::string_view s) {
    out += '"';
    char buf[16];
    for (size_t i = 0; i < s.size();) {
      const size_t start = i;
      const char32_t c = uni::next(s, i);
      switch (c) {
        case '"':
          out += "\\\"";
          continue;
        case '\\':
          out += "\\\\";
          continue;
        case '\n':
          out += "\\n";
          continue;
        case '\r':
          out += "\\r";
          continue;
        case '\t':
          out += "\\t";
          continue;
        case '\b':
          out += "\\b";
          continue;
        case '\f':
          out += "\\f";
          continue;
        default:
          break;
      }
      if (c < 0x20 || (ensure_ascii_ && c > 0x7E)) {
        if (c >= 0x10000) {
          const char32_t v = c - 0x10000;
          std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", static_cast<unsigned>(0xD800 | (v >> 10)),
                        static_cast<unsigned>(0xDC00 | (v & 0x3FF)));
        } else {
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
        }
        out += buf;
      } else {
        out.append(s.substr(start, i - start));
      }
    }
    out += '"';
  }
};

}  // namespace

Value from_json(const nlohmann::ordered_json& json) { return from_json_at(json, 0); }

std::string to_json(const Value& value, bool ensure_ascii, const Value& indent, std::string_view item_separator,
                    std::string_view key_separator, bool sort_keys) {
  std::string indent_text;
  bool has_indent = false;
  if (indent.is_str()) {
    indent_text = indent.as_str();
    has_indent = true;
  } else if (indent.is_int()) {
    indent_text = std::string(static_cast<size_t>(std::clamp<int64_t>(indent.as_int(), 0, 1024)), ' ');
    has_indent = true;
  } else if (!indent.is_none() && !indent.is_undefined()) {
    raise("TypeError", cat("can't multiply sequence by non-int of type '", type_name(indent), "'"));
  }
  Encoder encoder(ensure_ascii, std::move(indent_text), has_indent, item_separator, key_separator, sort_keys);
  encoder.encode(value, 0);
  return std::move(encoder.out);
}

}  // namespace strata::jinja
