/* The Markdown that forget's experiments write (results.md: headings, paragraphs, "- " lists,
 * pipe tables, **bold**, `code`) as HTML for their reports, so a report shows the same text as
 * real tables instead of preformatted Markdown. Only that subset; everything else is escaped. */
#ifndef FORGET_REPORT_HTML_H
#define FORGET_REPORT_HTML_H

#include <stdio.h>

void html_from_markdown(FILE *f, const char *md);
/* s with <, >, & and " escaped. */
void html_escape(FILE *f, const char *s);
/* The head of an experiment report: doctype, title "forget: TITLE", the shared style (right-aligned
 * tables, .charts / .maps rows of figures), and the opened body. */
void html_report_begin(FILE *f, const char *title);

#endif
