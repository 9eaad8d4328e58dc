#include "eval/report_html.h"

#include <string.h>

static int escape_char(FILE *f, char c) {
    const char *r = c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : c == '"' ? "&quot;" : NULL;
    if (r) fputs(r, f);
    return r != NULL;
}

void html_escape(FILE *f, const char *s) {
    for (; *s; s++)
        if (!escape_char(f, *s)) fputc(*s, f);
}

/* One line's inline text: **bold** and `code` spans, HTML special characters escaped. */
static void inline_text(FILE *f, const char *s, size_t n) {
    int bold = 0, code = 0;
    for (size_t i = 0; i < n; i++) {
        if (!code && i + 1 < n && s[i] == '*' && s[i + 1] == '*') {
            fputs(bold ? "</b>" : "<b>", f);
            bold = !bold, i++;
        } else if (s[i] == '`') {
            fputs(code ? "</code>" : "<code>", f);
            code = !code;
        } else if (s[i] == '"' || !escape_char(f, s[i])) {
            fputc(s[i], f);
        }
    }
    if (code) fputs("</code>", f);
    if (bold) fputs("</b>", f);
}

static void table_row(FILE *f, const char *s, size_t n, int head) {
    fputs("<tr>", f);
    size_t a = s[0] == '|' ? 1 : 0;
    while (a < n) {
        size_t b = a;
        while (b < n && s[b] != '|') b++;
        size_t x = a, y = b;
        while (x < y && s[x] == ' ') x++;
        while (y > x && s[y - 1] == ' ') y--;
        fputs(head ? "<th>" : "<td>", f);
        inline_text(f, s + x, y - x);
        fputs(head ? "</th>" : "</td>", f);
        a = b + 1;
        if (b + 1 >= n) break; /* the closing pipe */
    }
    fputs("</tr>\n", f);
}

void html_from_markdown(FILE *f, const char *md) {
    int in_table = 0, in_list = 0, row = 0;
    for (const char *s = md; *s;) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        const int is_row = n > 0 && s[0] == '|', is_item = n > 1 && s[0] == '-' && s[1] == ' ';
        if (in_table && !is_row) fputs("</table>\n", f), in_table = 0;
        if (in_list && !is_item) fputs("</ul>\n", f), in_list = 0;
        if (is_row) {
            if (!in_table) fputs("<table>\n", f), in_table = 1, row = 0;
            if (strspn(s, "|-: ") < n) table_row(f, s, n, row == 0); /* the |---| line is the header's rule */
            row++;
        } else if (is_item) {
            if (!in_list) fputs("<ul>\n", f), in_list = 1;
            fputs("<li>", f), inline_text(f, s + 2, n - 2), fputs("</li>\n", f);
        } else if (n > 0 && s[0] == '#') {
            size_t h = strspn(s, "#");
            fprintf(f, "<h%zu>", h + 1), inline_text(f, s + h + (s[h] == ' '), n - h - (s[h] == ' ')), fprintf(f, "</h%zu>\n", h + 1);
        } else if (n > 0) {
            fputs("<p>", f), inline_text(f, s, n), fputs("</p>\n", f);
        }
        s = e ? e + 1 : s + n;
    }
    if (in_table) fputs("</table>\n", f);
    if (in_list) fputs("</ul>\n", f);
}

void html_report_begin(FILE *f, const char *title) {
    fprintf(f, "<!doctype html><html><head><meta charset=\"utf-8\"><title>forget: %s</title><style>"
               "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}table{border-collapse:"
               "collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,"
               "th:first-child{text-align:left}.maps,.charts{display:flex;flex-wrap:wrap;gap:8px}</style></head><body>\n",
            title);
}
