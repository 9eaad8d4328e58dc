/* Results Markdown as report HTML: pipe tables become tables (the rule line dropped, the first
 * row a header), lists, headings, bold and code spans, and everything else escaped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/report_html.h"
#include "test.h"

TEST(report_html_renders_results_markdown) {
    const char *md = "# Title\n\nCommand: `forget x --a <b>`.\n\n| m | H % |\n|---|---|\n| **a** | 1.5 |\n| b & c | 2 |\n\n- one\n- two\n";
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    html_from_markdown(f, md);
    fclose(f);
    CHECK(strstr(out, "<h2>Title</h2>"));
    CHECK(strstr(out, "<p>Command: <code>forget x --a &lt;b&gt;</code>.</p>"));
    CHECK(strstr(out, "<table>\n<tr><th>m</th><th>H %</th></tr>\n<tr><td><b>a</b></td><td>1.5</td></tr>\n"));
    CHECK(strstr(out, "<td>b &amp; c</td>"));
    CHECK(!strstr(out, "---"));
    CHECK(strstr(out, "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"));
    free(out);
}
