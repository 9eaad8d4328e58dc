// The C face of Debian's libsentencepiece (C++ only): loading, encoding, decoding and training.
// Hand-written only as glue; every tokenizer algorithm is the library's.
extern "C" {
#include "core/err.h" // a C header: C linkage for err_set, xmalloc
}
#include "io/sp_tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <string>
#include <unordered_map>
#include <vector>

extern "C" {
#include "io/atomic_file.h"
#include "io/file_open.h"
}

struct SpTokenizer {
    sentencepiece::SentencePieceProcessor sp;
};

static char *dup_string(const std::string &s) {
    char *out = static_cast<char *>(xmalloc(s.size() + 1));
    memcpy(out, s.data(), s.size());
    out[s.size()] = 0;
    return out;
}

extern "C" SpTokenizer *sp_load(const char *path, Err *e) {
    char *buf = nullptr;
    size_t len = 0;
    if (read_file(path, (size_t)1 << 30, &buf, &len, e)) return nullptr;
    SpTokenizer *t = new SpTokenizer();
    const auto st = t->sp.LoadFromSerializedProto(std::string(buf, len));
    free(buf);
    if (!st.ok()) {
        err_set(e, "%s: not a SentencePiece model (%zu bytes): %s", path, len, st.ToString().c_str());
        delete t;
        return nullptr;
    }
    if (t->sp.GetPieceSize() < 2) {
        err_set(e, "%s: a SentencePiece model of %d pieces", path, t->sp.GetPieceSize());
        delete t;
        return nullptr;
    }
    return t;
}

extern "C" void sp_free(SpTokenizer *t) { delete t; }
extern "C" int sp_vocab_size(const SpTokenizer *t) { return t->sp.GetPieceSize(); }
extern "C" int sp_bos(const SpTokenizer *t) { return t->sp.bos_id(); }
extern "C" int sp_eos(const SpTokenizer *t) { return t->sp.eos_id(); }
extern "C" int sp_pad(const SpTokenizer *t) { return t->sp.pad_id(); }
extern "C" int sp_unk(const SpTokenizer *t) { return t->sp.unk_id(); }

extern "C" int sp_piece_id(const SpTokenizer *t, const char *piece) {
    const int id = t->sp.PieceToId(piece);
    return id == t->sp.unk_id() && strcmp(piece, t->sp.IdToPiece(id).c_str()) != 0 ? -1 : id;
}

extern "C" const char *sp_piece(const SpTokenizer *t, int id) {
    if (id < 0 || id >= t->sp.GetPieceSize()) return nullptr;
    return t->sp.IdToPiece(id).c_str();
}

extern "C" int sp_encode(const SpTokenizer *t, const char *text, int32_t **ids, Err *e) {
    std::vector<int> v;
    const auto st = t->sp.Encode(text, &v);
    if (!st.ok()) return err_set(e, "SentencePiece could not encode the text: %s", st.ToString().c_str());
    *ids = static_cast<int32_t *>(xmalloc(sizeof(int32_t) * (v.size() ? v.size() : 1)));
    for (size_t i = 0; i < v.size(); i++) (*ids)[i] = v[i];
    return (int)v.size();
}

extern "C" char *sp_decode(const SpTokenizer *t, const int32_t *ids, int n, Err *e) {
    std::vector<int> v((size_t)(n > 0 ? n : 0));
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->sp.GetPieceSize()) {
            err_set(e, "token %d is id %d, outside the tokenizer's %d pieces", i, ids[i], t->sp.GetPieceSize());
            return nullptr;
        }
        v[(size_t)i] = ids[i];
    }
    std::string out;
    const auto st = t->sp.Decode(v, &out);
    if (!st.ok()) {
        err_set(e, "SentencePiece could not decode: %s", st.ToString().c_str());
        return nullptr;
    }
    return dup_string(out);
}

// The corpus line by line through the trainer's iterator, so the model records no input path (the
// same corpus trains the same bytes wherever it lies).
class FileLines : public sentencepiece::SentenceIterator {
  public:
    explicit FileLines(const char *buf, size_t len) : at_(buf), end_(buf + len) { Next(); }
    bool done() const override { return done_; }
    void Next() override {
        if (at_ >= end_) {
            done_ = true;
            return;
        }
        const char *nl = static_cast<const char *>(memchr(at_, '\n', (size_t)(end_ - at_)));
        const char *stop = nl ? nl : end_;
        line_.assign(at_, (size_t)(stop - at_));
        at_ = nl ? nl + 1 : end_;
    }
    const std::string &value() const override { return line_; }
    sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

  private:
    const char *at_, *end_;
    std::string line_;
    bool done_ = false;
};

extern "C" int sp_train(const char *corpus, const char *out_path, const SpTrainOpts *o, Err *e) {
    char *buf = nullptr;
    size_t len = 0;
    if (read_file(corpus, (size_t)1 << 31, &buf, &len, e)) return -1; // names a missing or unreadable corpus
    std::unordered_map<std::string, std::string> args = {
        {"vocab_size", std::to_string(o->vocab_size)},
        {"model_type", o->model_type ? o->model_type : "unigram"},
        {"num_threads", std::to_string(o->threads > 0 ? o->threads : 1)},
        {"pad_id", "3"}, // Llama's layout: unk 0, bos 1, eos 2; a pad for batches
        {"input_sentence_size", "0"},
        {"shuffle_input_sentence", "false"}, // every sentence, in file order: deterministic
        {"minloglevel", "2"},
        {"hard_vocab_limit", "false"},
    };
    if (o->user_symbols && *o->user_symbols) args["user_defined_symbols"] = o->user_symbols;
    if (o->character_coverage > 0) args["character_coverage"] = std::to_string(o->character_coverage);
    sentencepiece::SetRandomGeneratorSeed((unsigned)(o->seed ? o->seed : 1));
    std::string model;
    FileLines lines(buf, len);
    const auto st = sentencepiece::SentencePieceTrainer::Train(args, &lines, &model);
    free(buf);
    if (!st.ok()) return err_set(e, "training a SentencePiece model on %s: %s", corpus, st.ToString().c_str());
    return write_file_atomic(out_path, model.data(), model.size(), e);
}
