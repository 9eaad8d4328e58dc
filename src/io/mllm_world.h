/* A world for the MLLM to know, made of Debian's data and regenerated from a seed (docs/mllm.md):
 *
 *   people   invented characters, each a "face" (an emoji person glyph of Unicode's "person"
 *            subgroup with its skin tone and hair, on a background colour, with an accessory emoji in
 *            a corner) and a profile of seven attributes whose values come from CLDR and Unicode data:
 *            job (person-role emoji), home town (CLDR time-zone cities), birth year, favourite sport
 *            (the sport subgroup's ball and racket games), favourite food (food emoji), pet (mammal emoji)
 *            and favourite colour ("X circle" emoji). Set A appears in pre-training (text and images), set
 *            B only in the last fine-tune.
 *   general  emoji artwork (colour and line art) and Fashion-MNIST images with captions and simple
 *            questions (what is it, which group; captions name the drawing style), CLDR names and keywords
 *            as text facts.
 *
 * Every profile question comes in an image+text form ("What is this person's job?" with the face)
 * and a text-only form ("What is Talvi Moren's job?"), with four answer options, a reference answer
 * sentence and a cloze sentence. Held-out test forms use paraphrased questions and faces in poses,
 * background shades and accessory corners never trained on; the general benchmark asks 4-choice
 * questions about held-out images. */
#ifndef FORGET_IO_MLLM_WORLD_H
#define FORGET_IO_MLLM_WORLD_H

#include <stdint.h>

#include "core/err.h"
#include "core/rng.h"

enum { WORLD_ATTRS = 7, WORLD_NAME_Q = WORLD_ATTRS, WORLD_IMG = 32 };
typedef enum { WSET_A = 0, WSET_B = 1, WSET_GENERAL = 2 } WorldSet;
typedef enum { WFORM_IMAGE = 0, WFORM_TEXT = 1 } WorldForm;
typedef enum { WIMG_FACE = 0, WIMG_EMOJI = 1, WIMG_FMNIST = 2 } WorldImageKind;

extern const char *const WORLD_ATTR_NAMES[WORLD_ATTRS];

typedef struct {
    char name[48];
    int face;          /* index into the world's face glyphs */
    int accessory;     /* index into the accessory glyphs */
    int background;    /* palette index */
    int attr[WORLD_ATTRS];
    WorldSet set;
} WorldPerson;

/* What an image shows; its pixels are drawn by world_render (deterministic in the fields). */
typedef struct {
    WorldImageKind kind;
    int index;         /* person, general emoji, or Fashion-MNIST sample */
    int style;         /* emoji: 0 colour, 1 line art */
    int test;          /* a held-out pose / augmentation */
    uint64_t variant;  /* which pose / augmentation */
} WorldImage;

typedef struct {
    WorldSet set;
    int person;        /* -1 for general questions */
    int attr;          /* 0..WORLD_ATTRS-1, WORLD_NAME_Q ("who is this?"), or the general question kind */
    WorldForm form;
    int test;          /* a held-out form */
    WorldImage image;  /* used when form is WFORM_IMAGE; training draws a fresh variant each use */
    char *question, *answer, *value, *cloze; /* cloze NULL where there is none */
    char *options[4];  /* answer sentences; options[key] == answer */
    int key;
} WorldQA;

typedef struct {
    WorldImage image;
    char *text;
} WorldCaption;

typedef struct World World;

typedef struct {
    int people_a, people_b;  /* characters in each set */
    int general_emoji;       /* general emoji artwork items */
    int fmnist_per_class;    /* Fashion-MNIST training images per class (and a tenth as many test) */
    uint64_t seed;
} WorldOpts;

/* Builds the world: reads Unicode's emoji list, CLDR annotations and time zones, the Noto and
 * Symbola fonts and Fashion-MNIST (every error names the file). */
World *world_build(const WorldOpts *o, Err *e);
void world_free(World *w);

int world_n_people(const World *w);
const WorldPerson *world_person(const World *w, int i);
const char *world_attr_value(const World *w, int attr, int v);
/* Every question (training and held-out forms of every set). */
int world_n_qa(const World *w);
const WorldQA *world_qa(const World *w, int i);
/* Captions for projector alignment (set A faces, emoji, Fashion-MNIST). */
int world_n_captions(const World *w);
const WorldCaption *world_caption(const World *w, int i);
/* Lines of the text corpus: set A profiles in several phrasings, CLDR facts, item descriptions. */
int world_n_text(const World *w);
const char *world_text(const World *w, int i);

/* Draws an image as WORLD_IMG x WORLD_IMG 8-bit RGB (HWC). */
void world_render(const World *w, const WorldImage *im, uint8_t *rgb);
/* A training variant of a question's image: a new pose of the same face (or augmentation); with
 * any_style, an emoji item drawn in both styles comes in either (a question about the thing, not
 * the drawing; captions name the style and keep it). */
WorldImage world_train_variant(const World *w, const WorldImage *im, uint64_t variant, int any_style);

/* The chat template every stage and the evaluation use: "USER: <image>\nQUESTION\nASSISTANT:" (the
 * image part only for image questions); the answer follows after a space. Malloc'd. */
char *world_prompt(const char *question, int with_image);

#endif
