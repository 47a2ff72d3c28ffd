import type { Block } from "./ai-act-document.ts";

/** Markdown, self-contained. */
export function markdown(blocks: readonly Block[]): string {
  return `${blocks.map(markdownBlock).join("\n\n")}\n`;
}

function markdownBlock(b: Block): string {
  const cell = (c: string) => c.replaceAll("|", "\\|").replaceAll("\n", " ");
  const row = (r: readonly string[]) => `| ${r.map(cell).join(" | ")} |`;
  switch (b.kind) {
    case "title":
      return `# ${b.text}`;
    case "heading":
      return `## ${b.text}`;
    case "subheading":
      return `### ${b.text}`;
    case "supports":
      return `*${b.text}*`;
    case "text":
      return b.text;
    case "table":
      return [row(b.head), row(b.head.map(() => "---")), ...b.rows.map(row)].join("\n");
    case "list":
      return b.items.map((i) => `- ${i}`).join("\n");
  }
}

const STYLE = `body{font:14px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#111}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}
.supports{color:#555;font-style:italic}
table{border-collapse:collapse;margin:.5em 0;width:100%}
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#eee}
@media print{body{margin:0}h2{break-after:avoid}table{break-inside:auto}}`;

/** HTML, self-contained (inline style, no scripts, nothing fetched). */
export function html(blocks: readonly Block[]): string {
  const title = blocks.find((b) => b.kind === "title");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title?.kind === "title" ? title.text : "AI Act pack")}</title>
<style>${STYLE}</style></head>
<body>
${blocks.map(htmlBlock).join("\n")}
</body></html>
`;
}

function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}

function htmlBlock(b: Block): string {
  switch (b.kind) {
    case "title":
      return `<h1>${esc(b.text)}</h1>`;
    case "heading":
      return `<h2>${esc(b.text)}</h2>`;
    case "subheading":
      return `<h3>${esc(b.text)}</h3>`;
    case "supports":
      return `<p class="supports">${esc(b.text)}</p>`;
    case "text":
      return `<p>${esc(b.text)}</p>`;
    case "table": {
      const head = b.head.map((h) => `<th>${esc(h)}</th>`).join("");
      const rows = b.rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`).join("");
      return `<table><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>`;
    }
    case "list":
      return `<ul>${b.items.map((i) => `<li>${esc(i)}</li>`).join("")}</ul>`;
  }
}
