/* rules._wordscan: which of many keywords and phrases occur as whole words in a text, in one
 * pass over its characters.
 *
 * Why native code: the engine folds every message body (case, accents), splits it into words
 * and looks every word up among thousands of keywords. In Python that was three quarters of a
 * rules evaluation (bench/rules.py): a 2.4 KB body cost about 120 us to fold and split, 30 us to
 * intersect with the keyword set and 40 us to look for phrases. Here one loop does all three
 * with a table lookup per character and a hash lookup per word.
 *
 * What a word is, and how it is folded, is decided in Python (rules/text.py): rules/wordscan.py
 * builds the per-character table from it, so the two cannot disagree. Texts this module cannot
 * fold alone (not in NFC, or letters beyond the Basic Multilingual Plane) are answered with
 * None, and Python takes them (tests/rules/test_wordscan.py checks both give the same answer).
 *
 * Table entries (one uint32 per BMP code point):
 *   bit 31      the character may change under NFC (a combining mark, a composition's second)
 *   bits 29-30  SEP (ends a word), CHAR (a word character: the folded code point in bits 0-20),
 *               DROP (nothing: U+0307 after casefolding), EXPANSION (bits 0-20: an offset into
 *               the expansions array, which holds a count and then that many SEP/CHAR/DROP).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define TABLE_SIZE 0x10000
#define NFC_FLAG 0x80000000u
#define KIND_SHIFT 29
#define KIND_MASK 0x3u
#define VALUE_MASK 0x1FFFFFu
#define KIND_SEP 0u
#define KIND_CHAR 1u
#define KIND_DROP 2u
#define KIND_EXPANSION 3u

typedef struct {
    uint64_t hash;
    uint32_t offset; /* into pool */
    uint32_t length;
    int32_t word;    /* vocabulary id; -1: empty bucket */
    int32_t slot;    /* what finding it reports; -1: only part of phrases */
} Bucket;

typedef struct {
    PyObject_HEAD
    uint32_t *table;
    uint32_t *expansions;
    Py_ssize_t expansions_len;
    Bucket *buckets;
    uint64_t mask;
    Py_UCS4 *pool;
    Py_ssize_t max_word;
    /* Phrases as vocabulary ids, grouped by their last word:
     * ending_at[ending_start[w] .. ending_start[w + 1]) are the phrases whose last word is w. */
    int32_t *phrase_words;
    int32_t *phrase_start; /* phrase p's words: phrase_words[phrase_start[p] .. [p + 1]) */
    int32_t *phrase_slot;
    int32_t *ending_start;
    int32_t *ending_at;
    Py_ssize_t phrases;
    Py_ssize_t max_phrase;
    Py_ssize_t slots;
    /* Scratch space of a scan, kept between scans (a scan holds the GIL: one at a time).
     * A slot was found in this scan when its stamp is this scan's. */
    Py_UCS4 *word;
    int32_t *recent;
    uint32_t *stamps;
    uint32_t stamp;
    int32_t *found;
    int built; /* set last in Scanner_init: every field above is there */
} Scanner;

typedef struct {
    const Scanner *scanner;
    Py_UCS4 *word;
    Py_ssize_t length;
    int overflow;
    uint64_t hash;
    int32_t *recent; /* ring of the last max_phrase words' ids */
    Py_ssize_t recent_at;
    uint32_t *stamps;
    uint32_t stamp;
    int32_t *found;
    Py_ssize_t found_count;
} Pass;

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static inline uint64_t
mix(uint64_t hash, Py_UCS4 ch)
{
    return (hash ^ (uint64_t)ch) * FNV_PRIME;
}

static inline uint64_t
bucket_of(uint64_t hash, uint64_t mask)
{
    return (hash ^ (hash >> 29)) & mask;
}

static const Bucket *
lookup(const Scanner *s, uint64_t hash, const Py_UCS4 *word, Py_ssize_t length)
{
    uint64_t at = bucket_of(hash, s->mask);
    for (;;) {
        const Bucket *b = &s->buckets[at];
        if (b->word < 0)
            return NULL;
        if (b->hash == hash && b->length == (uint32_t)length &&
            memcmp(s->pool + b->offset, word, (size_t)length * sizeof(Py_UCS4)) == 0)
            return b;
        at = (at + 1) & s->mask;
    }
}

static inline void
report(Pass *p, int32_t slot)
{
    if (slot >= 0 && p->stamps[slot] != p->stamp) {
        p->stamps[slot] = p->stamp;
        p->found[p->found_count++] = slot;
    }
}

static void
finish_word(Pass *p)
{
    const Scanner *s = p->scanner;
    int32_t word = -1;
    if (!p->overflow) {
        const Bucket *b = lookup(s, p->hash, p->word, p->length);
        if (b != NULL) {
            word = b->word;
            report(p, b->slot);
        }
    }
    if (s->phrases > 0) {
        p->recent[p->recent_at] = word;
        if (word >= 0) {
            for (int32_t e = s->ending_start[word]; e < s->ending_start[word + 1]; e++) {
                int32_t phrase = s->ending_at[e];
                int32_t first = s->phrase_start[phrase];
                int32_t count = s->phrase_start[phrase + 1] - first;
                int matched = 1;
                /* Word count - 1 .. 0 of the phrase against the ring, newest first. */
                for (int32_t k = 1; k < count && matched; k++) {
                    Py_ssize_t at = p->recent_at - k;
                    if (at < 0)
                        at += s->max_phrase;
                    matched = p->recent[at] == s->phrase_words[first + count - 1 - k];
                }
                if (matched)
                    report(p, s->phrase_slot[phrase]);
            }
        }
        /* Not `% max_phrase`: a division a word cost more than the rest of the word's work. */
        if (++p->recent_at == s->max_phrase)
            p->recent_at = 0;
    }
    p->length = 0;
    p->overflow = 0;
    p->hash = FNV_OFFSET;
}

/* Most separators follow another one or end nothing: only a word pays for a call. */
static inline void
end_word(Pass *p)
{
    if (p->length != 0)
        finish_word(p);
}

static inline void
add_char(Pass *p, Py_UCS4 ch)
{
    if (p->length < p->scanner->max_word)
        p->word[p->length] = ch;
    else
        p->overflow = 1; /* longer than any keyword: read on, match nothing */
    p->length++;
    p->hash = mix(p->hash, ch);
}

static inline void
apply(Pass *p, uint32_t entry)
{
    switch ((entry >> KIND_SHIFT) & KIND_MASK) {
    case KIND_SEP:
        end_word(p);
        break;
    case KIND_CHAR:
        add_char(p, entry & VALUE_MASK);
        break;
    default: /* KIND_DROP */
        break;
    }
}

/* Beyond the BMP: emoji, symbols and tags separate words; anything else (letters of other
 * planes, their marks) goes to Python. */
static inline int
plain_separator(Py_UCS4 ch)
{
    if (Py_UNICODE_ISALNUM(ch))
        return 0;
    return (ch >= 0x1F000 && ch <= 0x1FFFF) || (ch >= 0xE0000 && ch <= 0xE0FFF);
}

#define CHAR_FLOOR ((uint32_t)KIND_CHAR << KIND_SHIFT)

/* 1: go on; 0: Python must take this text. The two common cases (a word character, a
 * separator) cost one comparison each: CHAR entries lie in [CHAR_FLOOR, 2 * CHAR_FLOOR) and
 * SEP entries below CHAR_FLOOR; DROP, EXPANSION and the NFC flag lie above. */
static inline int
step(Pass *p, const Scanner *s, Py_UCS4 ch, int check_nfc)
{
    if (ch >= TABLE_SIZE) {
        if (!plain_separator(ch))
            return 0;
        end_word(p);
        return 1;
    }
    uint32_t entry = s->table[ch];
    if (entry - CHAR_FLOOR < CHAR_FLOOR) {
        add_char(p, entry & VALUE_MASK);
        return 1;
    }
    if (entry < CHAR_FLOOR) {
        end_word(p);
        return 1;
    }
    if ((entry & NFC_FLAG) && check_nfc)
        return 0;
    if (((entry >> KIND_SHIFT) & KIND_MASK) == KIND_EXPANSION) {
        uint32_t at = entry & VALUE_MASK;
        uint32_t count = s->expansions[at];
        for (uint32_t k = 1; k <= count; k++)
            apply(p, s->expansions[at + k]);
    }
    else {
        apply(p, entry);
    }
    return 1;
}

/* One loop per string kind (1, 2 or 4 bytes a character), so the compiler need not decide
 * the width at every character. */
#define SCAN_AS(TYPE)                                                                         \
    do {                                                                                      \
        const TYPE *chars = (const TYPE *)data;                                              \
        for (Py_ssize_t i = 0; i < length; i++) {                                             \
            if (!step(p, s, chars[i], check_nfc))                                             \
                return 0;                                                                     \
        }                                                                                     \
    } while (0)

/* 1: scanned; 0: Python must take this text. */
static int
run(Pass *p, int kind, const void *data, Py_ssize_t length, int check_nfc)
{
    const Scanner *s = p->scanner;
    if (kind == PyUnicode_1BYTE_KIND)
        SCAN_AS(Py_UCS1);
    else if (kind == PyUnicode_2BYTE_KIND)
        SCAN_AS(Py_UCS2);
    else
        SCAN_AS(Py_UCS4);
    end_word(p);
    return 1;
}

static PyObject *
Scanner_scan(Scanner *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "scan(text: str, check_nfc: bool)");
        return NULL;
    }
    PyObject *text = args[0];
    int check_nfc = PyObject_IsTrue(args[1]);
    if (check_nfc < 0)
        return NULL;
    if (PyUnicode_READY(text) < 0)
        return NULL;
    if (!self->built) {
        PyErr_SetString(PyExc_RuntimeError, "the Scanner was not built");
        return NULL;
    }
    /* Made before the pass: allocating a list may run the cyclic GC (Python 3.11), whose
     * finalizers may scan with this Scanner (or let another thread do so) and overwrite
     * self->found. Nothing below allocates a GC-tracked object. */
    PyObject *result = PyList_New(0);
    if (result == NULL)
        return NULL;
    Pass pass;
    memset(&pass, 0, sizeof pass);
    pass.scanner = self;
    pass.hash = FNV_OFFSET;
    pass.word = self->word;
    pass.recent = self->recent;
    pass.found = self->found;
    pass.stamps = self->stamps;
    if (++self->stamp == 0) { /* wrapped around after 4 billion scans: old stamps could match */
        memset(self->stamps, 0, (size_t)(self->slots + 1) * sizeof(uint32_t));
        self->stamp = 1;
    }
    pass.stamp = self->stamp;
    for (Py_ssize_t k = 0; k < self->max_phrase; k++)
        pass.recent[k] = -1;

    /* The GIL stays held: the scratch space is the scanner's, and a scan of a 2.4 KB body
     * takes microseconds (releasing and taking the GIL back would cost a good part of that). */
    int scanned = run(&pass, PyUnicode_KIND(text), PyUnicode_DATA(text),
                      PyUnicode_GET_LENGTH(text), check_nfc);
    if (!scanned) {
        Py_DECREF(result);
        return Py_NewRef(Py_None);
    }
    for (Py_ssize_t k = 0; k < pass.found_count; k++) {
        PyObject *slot = PyLong_FromLong(pass.found[k]);
        if (slot == NULL || PyList_Append(result, slot) < 0) {
            Py_XDECREF(slot);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(slot);
    }
    return result;
}

/* -- construction ----------------------------------------------------------------------------- */

static int32_t *
int_array(PyObject *sequence, const char *what, Py_ssize_t *count)
{
    PyObject *fast = PySequence_Fast(sequence, what);
    if (fast == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    int32_t *array = PyMem_Calloc((size_t)n + 1, sizeof(int32_t));
    if (array == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        long value = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, k));
        if (value == -1 && PyErr_Occurred()) {
            PyMem_Free(array);
            Py_DECREF(fast);
            return NULL;
        }
        if (value < -1 || value >= INT32_MAX) {
            PyMem_Free(array);
            Py_DECREF(fast);
            PyErr_SetString(PyExc_ValueError, "a slot or word id is out of range");
            return NULL;
        }
        array[k] = (int32_t)value;
    }
    Py_DECREF(fast);
    *count = n;
    return array;
}

static uint32_t *
copy_uint32s(PyObject *buffer, Py_ssize_t *count)
{
    Py_buffer view;
    if (PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (view.len % 4 != 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "a table of uint32 entries was expected");
        return NULL;
    }
    uint32_t *copy = PyMem_Malloc(view.len > 0 ? (size_t)view.len : 4);
    if (copy == NULL) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(copy, view.buf, (size_t)view.len);
    *count = view.len / 4;
    PyBuffer_Release(&view);
    return copy;
}

static int
add_words(Scanner *self, PyObject *words, PyObject *word_slots)
{
    Py_ssize_t n = PyTuple_GET_SIZE(words); /* a tuple: word_slots' __index__ cannot change it */
    Py_ssize_t slot_count;
    int32_t *slots = int_array(word_slots, "word_slots must be a sequence", &slot_count);
    if (slots == NULL)
        return -1;
    if (slot_count != n) {
        PyMem_Free(slots);
        PyErr_SetString(PyExc_ValueError, "one slot per word");
        return -1;
    }
    uint64_t capacity = 16;
    while (capacity < (uint64_t)n * 2 + 1)
        capacity <<= 1;
    self->mask = capacity - 1;
    self->buckets = PyMem_Malloc(capacity * sizeof(Bucket));
    Py_ssize_t pool_size = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *word = PyTuple_GET_ITEM(words, k);
        if (!PyUnicode_Check(word) || PyUnicode_READY(word) < 0) {
            PyMem_Free(slots);
            PyErr_SetString(PyExc_TypeError, "words must be strings");
            return -1;
        }
        pool_size += PyUnicode_GET_LENGTH(word);
    }
    self->pool = PyMem_Malloc((size_t)(pool_size + 1) * sizeof(Py_UCS4));
    if (self->buckets == NULL || self->pool == NULL) {
        PyMem_Free(slots);
        PyErr_NoMemory();
        return -1;
    }
    for (uint64_t b = 0; b < capacity; b++)
        self->buckets[b].word = -1;
    Py_ssize_t offset = 0;
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *word = PyTuple_GET_ITEM(words, k);
        Py_ssize_t length = PyUnicode_GET_LENGTH(word);
        if (length == 0) {
            PyMem_Free(slots);
            PyErr_SetString(PyExc_ValueError, "an empty word");
            return -1;
        }
        if (PyUnicode_AsUCS4(word, self->pool + offset, pool_size - offset + 1, 0) == NULL) {
            PyMem_Free(slots);
            return -1;
        }
        uint64_t hash = FNV_OFFSET;
        for (Py_ssize_t i = 0; i < length; i++)
            hash = mix(hash, self->pool[offset + i]);
        if (lookup(self, hash, self->pool + offset, length) != NULL) {
            PyMem_Free(slots);
            PyErr_Format(PyExc_ValueError, "the word %R is given twice", word);
            return -1;
        }
        uint64_t at = bucket_of(hash, self->mask);
        while (self->buckets[at].word >= 0)
            at = (at + 1) & self->mask;
        self->buckets[at] = (Bucket){hash, (uint32_t)offset, (uint32_t)length, (int32_t)k,
                                     slots[k]};
        if (slots[k] >= self->slots)
            self->slots = (Py_ssize_t)slots[k] + 1;
        if (length > self->max_word)
            self->max_word = length;
        offset += length;
    }
    PyMem_Free(slots);
    return 0;
}

static int
add_phrases(Scanner *self, PyObject *phrases, PyObject *phrase_slots, Py_ssize_t vocabulary)
{
    Py_ssize_t n = PyTuple_GET_SIZE(phrases);
    Py_ssize_t slot_count;
    self->phrase_slot = int_array(phrase_slots, "phrase_slots must be a sequence", &slot_count);
    if (self->phrase_slot == NULL)
        return -1;
    if (slot_count != n) {
        PyErr_SetString(PyExc_ValueError, "one slot per phrase");
        return -1;
    }
    self->phrases = n;
    self->phrase_start = PyMem_Calloc((size_t)n + 1, sizeof(int32_t));
    self->ending_start = PyMem_Calloc((size_t)vocabulary + 2, sizeof(int32_t));
    self->ending_at = PyMem_Calloc((size_t)n + 1, sizeof(int32_t));
    if (self->phrase_start == NULL || self->ending_start == NULL || self->ending_at == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t total = 0;
    for (Py_ssize_t p = 0; p < n; p++) {
        PyObject *phrase = PyTuple_GET_ITEM(phrases, p);
        Py_ssize_t length = PySequence_Size(phrase);
        if (length < 2) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "a phrase has two words or more");
            return -1;
        }
        total += length;
    }
    self->phrase_words = PyMem_Calloc((size_t)total + 1, sizeof(int32_t));
    if (self->phrase_words == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t at = 0;
    for (Py_ssize_t p = 0; p < n; p++) {
        Py_ssize_t length;
        int32_t *ids = int_array(PyTuple_GET_ITEM(phrases, p), "a phrase is a sequence", &length);
        if (ids == NULL)
            return -1;
        /* len() above and the items here come from user code: they may disagree. */
        if (length < 2 || length > total - at) {
            PyMem_Free(ids);
            PyErr_SetString(PyExc_ValueError, "a phrase changed while it was read");
            return -1;
        }
        for (Py_ssize_t k = 0; k < length; k++) {
            if (ids[k] < 0 || ids[k] >= vocabulary) {
                PyMem_Free(ids);
                PyErr_SetString(PyExc_ValueError, "a phrase word is not in the vocabulary");
                return -1;
            }
        }
        self->phrase_start[p] = (int32_t)at;
        memcpy(self->phrase_words + at, ids, (size_t)length * sizeof(int32_t));
        self->ending_start[ids[length - 1] + 1]++;
        at += length;
        if (length > self->max_phrase)
            self->max_phrase = length;
        if (self->phrase_slot[p] >= self->slots)
            self->slots = (Py_ssize_t)self->phrase_slot[p] + 1;
        PyMem_Free(ids);
    }
    self->phrase_start[n] = (int32_t)at;
    for (Py_ssize_t w = 0; w < vocabulary; w++)
        self->ending_start[w + 1] += self->ending_start[w];
    int32_t *next = PyMem_Calloc((size_t)vocabulary + 1, sizeof(int32_t));
    if (next == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(next, self->ending_start, (size_t)vocabulary * sizeof(int32_t));
    for (Py_ssize_t p = 0; p < n; p++) {
        int32_t last = self->phrase_words[self->phrase_start[p + 1] - 1];
        self->ending_at[next[last]++] = (int32_t)p;
    }
    PyMem_Free(next);
    return 0;
}

static int
Scanner_init(Scanner *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"table", "expansions", "words", "word_slots", "phrases",
                            "phrase_slots", NULL};
    PyObject *table, *expansions, *words, *word_slots, *phrases, *phrase_slots;
    if (self->table != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a Scanner is built once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO!OO!O", names, &table, &expansions,
                                     &PyList_Type, &words, &word_slots, &PyList_Type, &phrases,
                                     &phrase_slots))
        return -1;
    Py_ssize_t table_len;
    self->table = copy_uint32s(table, &table_len); /* first: a second __init__ is refused */
    if (self->table == NULL)
        return -1;
    if (table_len != TABLE_SIZE) {
        PyErr_SetString(PyExc_ValueError, "the table has one entry per BMP code point");
        return -1;
    }
    self->expansions = copy_uint32s(expansions, &self->expansions_len);
    if (self->expansions == NULL)
        return -1;
    for (Py_ssize_t cp = 0; cp < TABLE_SIZE; cp++) {
        uint32_t entry = self->table[cp];
        if (((entry >> KIND_SHIFT) & KIND_MASK) == KIND_EXPANSION) {
            uint32_t at = entry & VALUE_MASK;
            if (at >= self->expansions_len ||
                (Py_ssize_t)self->expansions[at] >= self->expansions_len - (Py_ssize_t)at) {
                PyErr_SetString(PyExc_ValueError, "an expansion lies outside its array");
                return -1;
            }
            for (uint32_t k = 1; k <= self->expansions[at]; k++) {
                if (((self->expansions[at + k] >> KIND_SHIFT) & KIND_MASK) == KIND_EXPANSION) {
                    PyErr_SetString(PyExc_ValueError, "an expansion holds an expansion");
                    return -1;
                }
            }
        }
    }
    /* Snapshots: the slots' __index__ and the phrases' __len__/__iter__ run Python code
     * that could change the lists under us. */
    words = PyList_AsTuple(words);
    if (words == NULL)
        return -1;
    phrases = PyList_AsTuple(phrases);
    if (phrases == NULL) {
        Py_DECREF(words);
        return -1;
    }
    int failed = add_words(self, words, word_slots) < 0 ||
                 add_phrases(self, phrases, phrase_slots, PyTuple_GET_SIZE(words)) < 0;
    Py_ssize_t keywords = PyTuple_GET_SIZE(words) + PyTuple_GET_SIZE(phrases);
    Py_DECREF(words);
    Py_DECREF(phrases);
    if (failed)
        return -1;
    if (self->slots > keywords) {
        PyErr_SetString(PyExc_ValueError, "a slot is beyond the keywords");
        return -1;
    }
    self->word = PyMem_Calloc((size_t)self->max_word + 1, sizeof(Py_UCS4));
    self->recent = PyMem_Calloc((size_t)self->max_phrase + 1, sizeof(int32_t));
    self->stamps = PyMem_Calloc((size_t)self->slots + 1, sizeof(uint32_t));
    self->found = PyMem_Calloc((size_t)self->slots + 1, sizeof(int32_t));
    if (self->word == NULL || self->recent == NULL || self->stamps == NULL || self->found == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->built = 1;
    return 0;
}

static void
Scanner_dealloc(Scanner *self)
{
    PyMem_Free(self->table);
    PyMem_Free(self->expansions);
    PyMem_Free(self->buckets);
    PyMem_Free(self->pool);
    PyMem_Free(self->phrase_words);
    PyMem_Free(self->phrase_start);
    PyMem_Free(self->phrase_slot);
    PyMem_Free(self->ending_start);
    PyMem_Free(self->ending_at);
    PyMem_Free(self->word);
    PyMem_Free(self->recent);
    PyMem_Free(self->stamps);
    PyMem_Free(self->found);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)(void (*)(void))Scanner_scan, METH_FASTCALL,
     "scan(text, check_nfc) -> list of the slots found, in order of discovery, or None when\n"
     "the text needs Python (not NFC while check_nfc, or letters beyond the BMP)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rules._wordscan.Scanner",
    .tp_doc = "Whole-word keyword and phrase finder over folded text (see rules/wordscan.py).",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "rules._wordscan",
    .m_doc = "Native inner loop of rules/wordscan.py.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__wordscan(void)
{
    if (PyType_Ready(&ScannerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "TABLE_SIZE", TABLE_SIZE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
