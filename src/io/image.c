#include "io/image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
/* jpeglib.h needs FILE from stdio.h first */
#include <jpeglib.h>
#include <glib.h>
#include <png.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic_file.h"
#include "io/file_open.h"

void image_free(Image8 *im) {
    if (!im) return;
    free(im->px);
    memset(im, 0, sizeof *im);
}

static int check_size(long w, long h, long max_pixels, const char *name, Err *e) {
    if (w <= 0 || h <= 0 || w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || w * h > max_pixels)
        return err_set(e, "%s: image size %ldx%ld is outside 1..%d per side and %ld pixels", name, w, h, IMAGE_MAX_SIDE,
                       max_pixels);
    return 0;
}

/* -------------------------------------------------------------------- PNG */

typedef struct {
    const uint8_t *buf;
    size_t n, at;
    jmp_buf jmp;
    char msg[256];
} PngCtx;

static void png_read_mem(png_structp p, png_bytep out, size_t len) {
    PngCtx *c = png_get_io_ptr(p);
    if (c->n - c->at < len) png_error(p, "file ends early (truncated)");
    memcpy(out, c->buf + c->at, len);
    c->at += len;
}

static void png_on_error(png_structp p, png_const_charp msg) {
    PngCtx *c = png_get_error_ptr(p);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jmp, 1);
}

static void png_on_warning(png_structp p, png_const_charp msg) {
    (void)p;
    (void)msg; /* warnings (bad CRC in ancillary chunks, ...) do not stop decoding */
}

static int decode_png(Image8 *im, const uint8_t *buf, size_t n, const char *name, long max_pixels, Err *e) {
    memset(im, 0, sizeof *im);
    if (n < 8 || png_sig_cmp(buf, 0, 8) != 0) return err_set(e, "%s: byte 0: not a PNG signature", name);
    PngCtx ctx = {.buf = buf, .n = n};
    png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    png_infop info = png_create_info_struct(p);
    /* volatile: assigned after setjmp and used after a longjmp back to it */
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(ctx.jmp)) {
        free(px);
        free(rows);
        png_destroy_read_struct(&p, &info, NULL);
        return err_set(e, "%s: PNG decoding failed near byte %zu: %s", name, ctx.at, ctx.msg);
    }
    png_set_read_fn(p, &ctx, png_read_mem);
    png_set_user_limits(p, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    png_read_info(p, info);
    png_uint_32 w = png_get_image_width(p, info), h = png_get_image_height(p, info);
    if (check_size((long)w, (long)h, max_pixels, name, e) != 0) {
        png_destroy_read_struct(&p, &info, NULL);
        return -1;
    }
    int color = png_get_color_type(p, info), depth = png_get_bit_depth(p, info);
    /* Pillow keeps the high byte of 16-bit samples, expands low bit depths and palettes. */
    if (depth == 16) png_set_strip_16(p);
    if (depth < 8) png_set_packing(p);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(p);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
    if (png_get_valid(p, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(p);
    png_set_interlace_handling(p);
    png_read_update_info(p, info);
    int ch = png_get_channels(p, info);
    if (ch < 1 || ch > 4 || png_get_bit_depth(p, info) != 8) png_error(p, "unsupported PNG layout");
    size_t stride = (size_t)w * (size_t)ch;
    px = xmalloc(stride * h);
    rows = xmalloc(sizeof(png_bytep) * h);
    for (png_uint_32 y = 0; y < h; y++) rows[y] = px + y * stride;
    png_read_image(p, rows);
    png_read_end(p, NULL);
    png_destroy_read_struct(&p, &info, NULL);
    free(rows);
    im->w = (int)w, im->h = (int)h, im->channels = ch, im->px = px;
    return 0;
}

void image_rgb8_from_signed(const float *chw, int n, int ch, int side, uint8_t *rgb) {
    const long hw = (long)side * side;
    for (int i = 0; i < n; i++)
        for (long p = 0; p < hw; p++)
            for (int c = 0; c < 3; c++) {
                const float v = chw[((size_t)i * ch + (ch == 3 ? c : 0)) * hw + p];
                const float u = roundf((v + 1) * 127.5f);
                rgb[((size_t)i * hw + p) * 3 + c] = (uint8_t)(u < 0 ? 0 : u > 255 ? 255 : u);
            }
}

int image_encode_png(const Image8 *im, uint8_t **out, size_t *len, const char *name, Err *e) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = (png_uint_32)im->w;
    pi.height = (png_uint_32)im->h;
    pi.format = im->channels == 1 ? PNG_FORMAT_GRAY
                : im->channels == 2 ? PNG_FORMAT_GA
                : im->channels == 3 ? PNG_FORMAT_RGB
                                    : PNG_FORMAT_RGBA;
    png_alloc_size_t size = 0;
    if (!png_image_write_to_memory(&pi, NULL, &size, 0, im->px, 0, NULL))
        return err_set(e, "%s: PNG encoding failed: %s", name, pi.message);
    void *mem = xmalloc(size);
    if (!png_image_write_to_memory(&pi, mem, &size, 0, im->px, 0, NULL)) {
        free(mem);
        return err_set(e, "%s: PNG encoding failed: %s", name, pi.message);
    }
    *out = mem, *len = size;
    return 0;
}

void image_tile(const uint8_t *rgb, int n, int side, int cols, int gap, int x0, int y0, Image8 *dst) {
    for (int i = 0; i < n; i++) {
        const int x = x0 + gap + (i % cols) * (side + gap), y = y0 + gap + (i / cols) * (side + gap);
        for (int r = 0; r < side; r++)
            memcpy(dst->px + ((size_t)(y + r) * dst->w + x) * 3, rgb + ((size_t)i * side + r) * side * 3, (size_t)side * 3);
    }
}

char *image_png_base64(const Image8 *im, const char *name, Err *e) {
    uint8_t *png;
    size_t len;
    if (image_encode_png(im, &png, &len, name, e)) return NULL;
    gchar *b64 = g_base64_encode(png, len);
    char *out = xstrdup(b64);
    g_free(b64), free(png);
    return out;
}

int image_save_png(const Image8 *im, const char *path, Err *e) {
    uint8_t *mem;
    size_t size;
    if (image_encode_png(im, &mem, &size, path, e)) return -1;
    int rc = write_file_atomic(path, mem, size, e);
    free(mem);
    return rc;
}

/* ------------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
} JpegErr;

static void jpeg_on_error(j_common_ptr cinfo) {
    JpegErr *je = (JpegErr *)cinfo->err;
    je->pub.format_message(cinfo, je->msg);
    longjmp(je->jmp, 1);
}

static void jpeg_quiet(j_common_ptr cinfo, int level) {
    (void)cinfo;
    (void)level; /* corrupt-data warnings: libjpeg recovers, as Pillow lets it */
}

static int decode_jpeg(Image8 *im, const uint8_t *buf, size_t n, const char *name, long max_pixels, Err *e) {
    memset(im, 0, sizeof *im);
    if (n < 3 || buf[0] != 0xFF || buf[1] != 0xD8) return err_set(e, "%s: byte 0: not a JPEG (no SOI marker)", name);
    struct jpeg_decompress_struct cinfo;
    JpegErr je;
    cinfo.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jpeg_on_error;
    je.pub.emit_message = jpeg_quiet;
    uint8_t *volatile px = NULL;
    if (setjmp(je.jmp)) {
        free(px);
        jpeg_destroy_decompress(&cinfo);
        return err_set(e, "%s: JPEG decoding failed: %s", name, je.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        return err_set(e, "%s: CMYK JPEG is not supported; convert it to RGB first", name);
    }
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    if (check_size((long)cinfo.image_width, (long)cinfo.image_height, max_pixels, name, e) != 0) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_start_decompress(&cinfo);
    int ch = cinfo.output_components;
    size_t stride = (size_t)cinfo.output_width * (size_t)ch;
    px = xmalloc(stride * cinfo.output_height);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = px + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    im->w = (int)cinfo.output_width, im->h = (int)cinfo.output_height, im->channels = ch, im->px = px;
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

/* ----------------------------------------------------------------- generic */

int image_decode_png(Image8 *im, const uint8_t *buf, size_t n, const char *name, Err *e) {
    return decode_png(im, buf, n, name, IMAGE_MAX_PIXELS, e);
}

int image_decode_jpeg(Image8 *im, const uint8_t *buf, size_t n, const char *name, Err *e) {
    return decode_jpeg(im, buf, n, name, IMAGE_MAX_PIXELS, e);
}

int image_decode_max(Image8 *im, const uint8_t *buf, size_t n, const char *name, long max_pixels, Err *e) {
    if (n >= 8 && png_sig_cmp(buf, 0, 8) == 0) return decode_png(im, buf, n, name, max_pixels, e);
    if (n >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF) return decode_jpeg(im, buf, n, name, max_pixels, e);
    memset(im, 0, sizeof *im);
    return err_set(e, "%s: byte 0: neither a PNG nor a JPEG signature", name);
}

int image_decode(Image8 *im, const uint8_t *buf, size_t n, const char *name, Err *e) {
    if (n >= 8 && png_sig_cmp(buf, 0, 8) == 0) return image_decode_png(im, buf, n, name, e);
    if (n >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF) return image_decode_jpeg(im, buf, n, name, e);
    memset(im, 0, sizeof *im);
    return err_set(e, "%s: byte 0: neither a PNG nor a JPEG signature", name);
}

int image_load(Image8 *im, const char *path, Err *e) {
    memset(im, 0, sizeof *im);
    char *buf;
    size_t n;
    if (read_file(path, (size_t)1 << 31, &buf, &n, e) != 0) return -1;
    int rc = image_decode(im, (const uint8_t *)buf, n, path, e);
    free(buf);
    return rc;
}
