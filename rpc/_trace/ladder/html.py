"""The ladder as one self-contained HTML page: the SVG drawing, a details pane, a little script.

Nothing is fetched: styles, script and data are inline. Hovering an arrow shows its ``<title>``
(as in the bare SVG) and lights up its stream; clicking it (or the up/down arrow keys) shows the
frame in the pane: the tracer's decoded lines, its bytes, each header field with its HPACK
representation and bytes, each gRPC message's prefix, bytes and protobuf text. The script notes
what it did on ``<body>`` (``data-ready``, ``data-arrows``: arrows drawn; ``data-errors``: any
script error), which is how tests/trace checks the page in headless Chromium.
"""

from __future__ import annotations

import json
from html import escape

from .model import Ladder
from .svg import render_svg
from .text import details

__all__ = ["render_html"]

_CSS = """
body { margin: 0; font-family: 'DejaVu Sans', Verdana, Arial, sans-serif; font-size: 13px; }
#layout { display: flex; align-items: flex-start; }
#drawing { flex: none; padding: 8px; }
#pane { flex: 1; min-width: 320px; position: sticky; top: 0; max-height: 100vh; overflow: auto;
        padding: 8px 12px; border-left: 1px solid #ccc; background: #fafafa; }
#pane pre { white-space: pre-wrap; font-size: 12px; margin: 4px 0 10px; }
#pane table { border-collapse: collapse; font-size: 12px; margin-bottom: 10px; }
#pane td, #pane th { border: 1px solid #ddd; padding: 2px 4px; text-align: left;
                     vertical-align: top; }
#pane code { font-size: 11px; word-break: break-all; }
g.frame { cursor: pointer; }
svg.dim g.frame { opacity: 0.25; }
svg.dim g.frame.lit { opacity: 1; }
g.frame.chosen text { font-weight: bold; }
g.legend { cursor: pointer; }
"""

_SCRIPT = r"""
(function () {
  var body = document.body;
  var errors = [];
  function fail(message) {
    errors.push(String(message));
    body.setAttribute('data-errors', errors.join('\n'));
  }
  window.addEventListener('error', function (e) { fail(e.message); });
  try {
    var data = JSON.parse(document.getElementById('ladder-data').textContent);
    var svg = document.querySelector('#drawing svg');
    var arrows = Array.prototype.slice.call(svg.querySelectorAll('g.frame'));
    var pane = document.getElementById('pane');
    var chosen = -1;
    function el(tag, text) {
      var node = document.createElement(tag);
      if (text !== undefined && text !== null) node.textContent = String(text);
      return node;
    }
    function table(head, rows) {
      var t = el('table'), tr = el('tr');
      head.forEach(function (h) { tr.appendChild(el('th', h)); });
      t.appendChild(tr);
      rows.forEach(function (row) {
        var r = el('tr');
        row.forEach(function (cell, i) {
          var td = el('td');
          if (i === row.length - 1) td.appendChild(el('code', cell)); else td.textContent = cell;
          r.appendChild(td);
        });
        t.appendChild(r);
      });
      return t;
    }
    function light(stream) {
      if (stream === null) { svg.classList.remove('dim'); }
      else { svg.classList.add('dim'); }
      arrows.forEach(function (g) {
        g.classList.toggle('lit', g.getAttribute('data-stream') === stream);
      });
    }
    function show(i) {
      if (i < 0 || i >= arrows.length) return;
      if (chosen >= 0) arrows[chosen].classList.remove('chosen');
      chosen = i;
      arrows[i].classList.add('chosen');
      var d = data.frames[i];
      pane.textContent = '';
      pane.appendChild(el('h3', d.title[0]));
      pane.appendChild(el('pre', d.title.slice(1).join('\n')));
      pane.appendChild(el('h4', 'bytes (hex)'));
      pane.appendChild(table(['part', 'bytes'], d.bytes));
      if (d.fields) {
        pane.appendChild(el('h4', 'header block: ' + d.table));
        pane.appendChild(table(['name', 'value', 'sent as', 'bytes'], d.fields));
      }
      (d.messages || []).forEach(function (m) {
        var heading = m.role + ' message #' + m.index + (m.type ? ' (' + m.type + ')' : '');
        pane.appendChild(el('h4', heading));
        pane.appendChild(table(['part', 'bytes'], [['prefix', m.prefix], ['message', m.bytes]]));
        if (m.text !== null) pane.appendChild(el('pre', m.text));
      });
    }
    arrows.forEach(function (g, i) {
      g.addEventListener('click', function () { show(i); });
      g.addEventListener('mouseenter', function () { light(g.getAttribute('data-stream')); });
      g.addEventListener('mouseleave', function () { light(null); });
    });
    Array.prototype.forEach.call(svg.querySelectorAll('g.legend'), function (g) {
      g.addEventListener('mouseenter', function () { light(g.getAttribute('data-stream')); });
      g.addEventListener('mouseleave', function () { light(null); });
    });
    document.addEventListener('keydown', function (e) {
      if (e.key === 'ArrowDown' || e.key === 'j') { show(chosen + 1); e.preventDefault(); }
      if (e.key === 'ArrowUp' || e.key === 'k') {
        show(Math.max(chosen - 1, 0));
        e.preventDefault();
      }
    });
    if (data.frames.length !== arrows.length) {
      fail('data for ' + data.frames.length + ' frames, ' + arrows.length + ' arrows');
    }
    var drawn = arrows.filter(function (g) {
      var box = g.getBBox();
      return box.width > 0 && box.height > 0;
    });
    body.setAttribute('data-arrows', String(drawn.length));
  } catch (e) {
    fail(e && e.stack ? e.stack : e);
  }
  body.setAttribute('data-ready', '1');
})();
"""


def _script_json(value: object) -> str:
    """JSON safe inside a <script> element (no "</script>" can end it early)."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


def render_html(ladder: Ladder, *, title: str = "h2rpc trace", times: bool = True) -> str:
    """The page: the drawing, the details pane, the frames' details as JSON, the script."""
    data = {"frames": [details(t, ladder, times) for t in ladder.transfers]}
    svg = render_svg(ladder, title=title, times=times)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n"
        f"<style>{_CSS}</style></head>\n"
        '<body data-ready="0">\n'
        '<div id="layout"><div id="drawing">\n'
        f"{svg}</div>\n"
        '<div id="pane"><p>Click an arrow (or press ↓) to see the frame decoded, with its bytes. '
        "Hover an arrow or a stream in the legend to follow its stream.</p></div></div>\n"
        f'<script type="application/json" id="ladder-data">{_script_json(data)}</script>\n'
        f"<script>{_SCRIPT}</script>\n"
        "</body></html>\n"
    )
