// SAX parsing of tokenizer.json: see tokenizer_json.h for why.
#include "tokenizer/tokenizer_json.h"

#include "strata/error.h"

namespace strata::tokenizer_detail {
namespace {

using nlohmann::json;

class Handler : public nlohmann::json_sax<json> {
 public:
  explicit Handler(TokenizerJson& out) : out_(out) {}

  const std::string& error() const { return error_; }
  bool semantic_error() const { return semantic_; }

  bool null() override { return value(json()); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override { return in_vocab() ? add_vocab(v) : value(json(v)); }
  bool number_unsigned(number_unsigned_t v) override {
    // An id above INT64_MAX is out of range anyway; -1 gets it rejected later.
    return in_vocab() ? add_vocab(v > uint64_t(INT64_MAX) ? -1 : int64_t(v)) : value(json(v));
  }
  bool number_float(number_float_t v, const string_t&) override { return value(json(v)); }
  bool binary(binary_t& v) override { return value(json(json::binary_t(v))); }

  bool string(string_t& v) override {
    if (!stack_.empty()) {
      Frame& f = stack_.back();
      if (f.mode == Mode::Merges) {
        const size_t space = v.find(' ');
        if (space == std::string::npos || v.find(' ', space + 1) != std::string::npos)
          return fail("model.merges[" + std::to_string(out_.merges->size()) + "] = \"" + v +
                      "\" is not two tokens separated by one space");
        out_.merges->emplace_back(v.substr(0, space), v.substr(space + 1));
        return true;
      }
      if (f.mode == Mode::MergePair) {
        if (f.pair.size() == 2) return fail(merge_shape_error());
        f.pair.push_back(std::move(v));
        return true;
      }
    }
    return value(json(std::move(v)));
  }

  bool start_object(std::size_t) override {
    if (!stack_.empty()) {
      Frame& f = stack_.back();
      if (f.mode == Mode::Dom && f.tag == Tag::Model && f.key == "vocab" && f.node->is_object()) {
        if (out_.vocab) return fail("model.vocab appears twice");
        out_.vocab.emplace();
        out_.vocab->reserve(1 << 16);
        stack_.push_back({nullptr, Mode::Vocab, Tag::Other, {}, {}});
        return true;
      }
      if (f.mode != Mode::Dom) return fail(capture_shape_error(f));
    }
    json* node = insert(json::object());
    Tag tag = Tag::Other;
    if (stack_.empty()) tag = Tag::Root;
    else if (stack_.back().tag == Tag::Root && stack_.back().key == "model") tag = Tag::Model;
    stack_.push_back({node, Mode::Dom, tag, {}, {}});
    return true;
  }

  bool key(string_t& k) override {
    stack_.back().key = std::move(k);
    return true;
  }

  bool end_object() override {
    stack_.pop_back();
    return true;
  }

  bool start_array(std::size_t) override {
    if (!stack_.empty()) {
      Frame& f = stack_.back();
      if (f.mode == Mode::Dom && f.tag == Tag::Model && f.key == "merges" && f.node->is_object()) {
        if (out_.merges) return fail("model.merges appears twice");
        out_.merges.emplace();
        out_.merges->reserve(1 << 16);
        stack_.push_back({nullptr, Mode::Merges, Tag::Other, {}, {}});
        return true;
      }
      if (f.mode == Mode::Merges) {
        stack_.push_back({nullptr, Mode::MergePair, Tag::Other, {}, {}});
        return true;
      }
      if (f.mode != Mode::Dom) return fail(capture_shape_error(f));
    }
    json* node = insert(json::array());
    stack_.push_back({node, Mode::Dom, Tag::Other, {}, {}});
    return true;
  }

  bool end_array() override {
    Frame& f = stack_.back();
    if (f.mode == Mode::MergePair) {
      if (f.pair.size() != 2) return fail(merge_shape_error());
      out_.merges->emplace_back(std::move(f.pair[0]), std::move(f.pair[1]));
    }
    stack_.pop_back();
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) override {
    error_ = ex.what();
    return false;
  }

 private:
  enum class Mode { Dom, Vocab, Merges, MergePair };
  // Where a DOM object sits, to recognize root.model.
  enum class Tag { Other, Root, Model };
  struct Frame {
    json* node;  // the container being filled (Dom mode)
    Mode mode;
    Tag tag;
    std::string key;                // object frames: the key whose value comes next
    std::vector<std::string> pair;  // MergePair: the tokens so far
  };

  bool fail(std::string message) {
    error_ = std::move(message);
    semantic_ = true;
    return false;
  }

  std::string merge_shape_error() const {
    return "model.merges[" + std::to_string(out_.merges->size()) + "] is not a pair [\"a\", \"b\"]";
  }
  std::string capture_shape_error(const Frame& f) const {
    if (f.mode == Mode::Vocab) return "model.vocab[\"" + f.key + "\"] is not an integer token id";
    return merge_shape_error();
  }

  bool in_vocab() const { return !stack_.empty() && stack_.back().mode == Mode::Vocab; }
  bool add_vocab(int64_t id) {
    out_.vocab->emplace_back(std::move(stack_.back().key), id);
    return true;
  }

  bool value(json v) {
    if (!stack_.empty() && stack_.back().mode != Mode::Dom) return fail(capture_shape_error(stack_.back()));
    insert(std::move(v));
    return true;
  }

  // Puts v where the current container wants it and returns its address,
  // which stays valid while v is being filled: nothing else is added to its
  // parent until v is complete.
  json* insert(json v) {
    if (stack_.empty()) {
      out_.rest = std::move(v);
      return &out_.rest;
    }
    Frame& f = stack_.back();
    if (f.node->is_array()) {
      f.node->push_back(std::move(v));
      return &f.node->back();
    }
    json& slot = (*f.node)[f.key];
    slot = std::move(v);
    return &slot;
  }

  TokenizerJson& out_;
  std::vector<Frame> stack_;
  std::string error_;
  bool semantic_ = false;
};

}  // namespace

TokenizerJson parse_tokenizer_json(const std::string& text, const std::string& file) {
  TokenizerJson out;
  Handler handler(out);
  if (!json::sax_parse(text, &handler)) {
    if (handler.semantic_error()) throw Error(handler.error(), file, {}, "corrupt tokenizer.json?");
    throw Error("malformed JSON: " + handler.error(), file, {}, "truncated download?");
  }
  return out;
}

}  // namespace strata::tokenizer_detail
