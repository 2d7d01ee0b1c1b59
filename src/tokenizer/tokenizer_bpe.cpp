// The BPE model: one pre-tokenized word to ids.
//
// Follows HF tokenizers models/bpe/model.rs (merge_word) and word.rs
// (merge_all): the word starts as one symbol per character (characters outside
// the vocab become <0xNN> byte tokens with byte_fallback, else the unknown
// token), then the adjacent pair with the lowest merge rank is merged, the
// leftmost one on ties, until no pair has a merge. A min-heap keyed on
// (rank, position) finds that pair; entries made stale by earlier merges are
// recognized and skipped when popped, exactly as word.rs does.
#include <queue>

#include "tokenizer/tokenizer_internal.h"

namespace strata::tokenizer_detail {
namespace {

struct Symbol {
  int32_t id;
  int32_t prev;  // index of the previous live symbol, -1 at the start
  int32_t next;  // index of the next live symbol, -1 at the end
  bool alive;
};

struct Candidate {
  int32_t rank;
  int32_t pos;     // index of the left symbol
  int32_t new_id;  // what the pair merged into when this entry was made
  // Makes std::priority_queue a min-heap on (rank, pos).
  bool operator<(const Candidate& other) const {
    return rank != other.rank ? rank > other.rank : pos > other.pos;
  }
};

}  // namespace

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges) {
    // Llama-3 style: a word that is itself in the vocab is one token, whatever
    // the merges would have made of it.
    if (auto it = vocab.find(word); it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }

  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&symbols](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, -1, true});
    if (n > 0) symbols[n - 1].next = n;
  };
  // A run of unknown characters becomes one unknown token with fuse_unk.
  bool pending_unk = false;
  auto flush_unk = [&] {
    if (pending_unk) add(*unk_id);
    pending_unk = false;
  };
  for (size_t i = 0; i < word.size();) {
    size_t len = utf8_sequence_length(word, i);
    if (len == 0) len = 1;
    const std::string_view ch = word.substr(i, len);
    i += len;
    if (auto it = vocab.find(ch); it != vocab.end()) {
      flush_unk();
      add(it->second);
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      for (char c : ch) all = all && byte_ids[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        flush_unk();
        for (char c : ch) add(byte_ids[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    // Without an unknown token in the vocab the character is dropped, as HF
    // does when unk_token is null.
    if (!unk_id) continue;
    if (pending_unk && !fuse_unk) flush_unk();
    pending_unk = true;
  }
  flush_unk();

  std::priority_queue<Candidate> queue;
  auto consider = [&](int32_t left) {
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    auto it = merges.find(pair_key(symbols[left].id, symbols[right].id));
    if (it != merges.end()) queue.push({it->second.first, left, it->second.second});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);

  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    // Stale entry: the pair at this position changed since it was queued.
    auto it = merges.find(pair_key(left.id, right.id));
    if (it == merges.end() || it->second.second != top.new_id) continue;

    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }

  for (const Symbol& s : symbols)
    if (s.alive) out.push_back(s.id);
}

}  // namespace strata::tokenizer_detail
