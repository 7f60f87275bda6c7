// A consensus case on the study page (templates/reviews/adjudication_panel.html), over the
// consensus API (docs/consensus.md): the reads side by side, the matched findings with their
// Dice and HD95, any read or fused mask (majority vote, STAPLE) on the images, and the form
// that records the case's reference standard: the mask shown, or the adjudicator's edit of it
// with the brush, the answers and a rationale.
//
// The mask shown is segment 1 of the viewer's labelmap of the case's series.
import { csrfToken } from "./csrf.js";
import { decodeMask, encodeMask } from "./viewer_review.js";

const SEGMENT = 1;
const STATUS_WORDS = {
  collecting: "Collecting reads",
  agreed: "The readers agree",
  adjudication: "Needs adjudication",
  adjudicated: "Adjudicated",
};

export class AdjudicationPanel {
  constructor(app, root) {
    this.app = app;
    this.root = root;
    this.case = null;
    this.shown = null; // {source, slices}
    this.edited = false;
    this.masks = new Map(); // url -> slices
    this.$ = (name) => root.querySelector(`[data-adj-${name}]`);
    this.$("form")?.addEventListener("submit", (event) => this.save(event));
    this.$("edit")?.addEventListener("click", () => this.edit());
  }

  async start() {
    const answer = await this._call("GET", this.root.dataset.caseUrl);
    if (!answer) return;
    this.case = answer;
    if (this.case.series_uid && !this.app.viewer.shownSlots().some((s) => s.seriesUid === this.case.series_uid)) {
      await this.app.viewer.showSeries(this.case.series_uid, this.app.viewer.activeIndex).catch(() => {});
    }
    this._render();
    const first = this.case.reference ? "reference" : this.case.fusion ? "staple" : this.case.reads[0] && `reading:${this.case.reads[0].reading}`;
    if (first) await this.show(first);
    this.root.dataset.adjudicationState = "ready";
  }

  state() {
    return { case: this.case, shown: this.shown && this.shown.source, edited: this.edited };
  }

  /** Shows a read ("reading:<id>": all its findings), "majority", "staple" or "reference". */
  async show(source) {
    const slices = await this._slicesOf(source);
    if (!slices) return;
    this.app.masks.paintSegment(this.case.series_uid, SEGMENT, slices, labelOf(source, this.case));
    this.shown = { source, slices };
    this.edited = false;
    await this._showLargestSlice(slices);
    this.root.querySelectorAll("input[name=adj-source]").forEach((r) => {
      r.checked = r.value === source;
    });
    this._say(`Showing ${labelOf(source, this.case)}.`);
  }

  /** Scrolls the case's series to the slice where the mask is largest. */
  async _showLargestSlice(slices) {
    let best = null;
    let most = 0;
    for (const [sop, bytes] of Object.entries(slices)) {
      const count = bytes.reduce((sum, v) => sum + (v ? 1 : 0), 0);
      if (count > most) [best, most] = [sop, count];
    }
    const slot = this.app.viewer.shownSlots().find((s) => s.seriesUid === this.case.series_uid);
    const index = best && slot ? slot.series.indexOfSop(best) : -1;
    if (index >= 0) await this.app.viewer.scrollTo(index, slot);
  }

  edit() {
    if (!this.shown) return this._say("Show a read or a fused mask first.");
    this.edited = true;
    this.app.masks.setActiveSegment(SEGMENT);
    this.app.masks.setVisible(true);
    this.app.tools.setTool("Brush");
    this._say(`Editing ${labelOf(this.shown.source, this.case)} with the brush (B) and eraser (X).`);
  }

  async save(event) {
    event?.preventDefault();
    if (this.saving) return; // a double click: the first recording is on its way
    this.saving = true;
    try {
      await this._save();
    } finally {
      this.saving = false;
    }
  }

  async _save() {
    const form = this.$("form");
    if (!form.reportValidity()) return;
    if (!this.shown) return this._say("Show the mask the reference starts from first.");
    const answers = {};
    this.root.querySelectorAll("[data-adj-question]").forEach((fieldset) => {
      answers[fieldset.dataset.adjQuestion] = fieldset.querySelector("input:checked")?.value;
    });
    const body = {
      version: this.case.reference?.version ?? 0,
      answers,
      rationale: this.$("rationale").value,
      source: this.shown.source,
    };
    // The current reference kept as it is, with new answers or rationale, is recorded as its
    // mask drawn again (the server takes reads, fusions and drawn masks as sources).
    if (this.edited || this.shown.source === "reference") {
      body.source = "edited";
      body.mask = encodeMask(this.app.masks.segmentSlices(this.case.series_uid, SEGMENT));
      if (["majority", "staple"].includes(this.shown.source)) body.fusion = this.shown.source;
    }
    const saved = await this._call("POST", this.case.urls.reference, body);
    if (!saved) return;
    this.case = (await this._call("GET", this.root.dataset.caseUrl)) || this.case;
    this.masks.delete("reference");
    this.edited = false;
    this._render();
    this._say(`Reference standard version ${saved.version} recorded (${saved.reference.source}).`);
  }

  async _slicesOf(source) {
    if (source.startsWith("reading:")) {
      const read = this.case.reads.find((r) => `reading:${r.reading}` === source);
      const parts = await Promise.all(read.findings.filter((f) => f.mask_url).map((f) => this._mask(f.mask_url)));
      return union(parts.filter(Boolean));
    }
    const url = source === "reference" ? this.case.reference?.mask_url : this.case.fusion?.[source]?.mask_url;
    return url ? this._mask(url, source === "reference" ? "reference" : url) : null;
  }

  async _mask(url, key = url) {
    if (!this.masks.has(key)) {
      const answer = await this._call("GET", url);
      if (!answer) return null;
      this.masks.set(key, decodeMask(answer.slices));
    }
    return this.masks.get(key);
  }

  _render() {
    const c = this.case;
    this.$("status").textContent = `${STATUS_WORDS[c.status] || c.status} · ${c.reads_done} of ${c.reads_per_case} reads${
      c.worst_dice != null ? ` · worst Dice ${c.worst_dice.toFixed(2)}` : ""
    }`;
    this.root.dataset.caseStatus = c.status;
    this.$("reasons").replaceChildren(...(c.reasons || []).map((reason) => element("li", { textContent: reason })));
    this._renderReads();
    this._renderFindings();
    this._renderSources();
    this._renderHistory();
    this._prefillAnswers();
  }

  _renderReads() {
    const names = readerNames(this.case);
    const texts = JSON.parse(this.root.dataset.questionTexts || "{}");
    this.$("reads").replaceChildren(
      ...this.case.reads.map((read) => {
        const card = element("div", { className: "adj-read" });
        card.dataset.reading = String(read.reading);
        card.append(element("h4", { textContent: names.get(read.reading) }));
        // An aided read and a blind one weigh differently: the card says which this is.
        const sight = read.read_with_ai ? "read with the AI" : read.ai_seen_before ? "saw the AI elsewhere first" : "read blind to the AI";
        card.append(element("p", { className: "muted small", textContent: sight }));
        const answers = Object.entries(read.answers || {}).map(([code, choice]) => `${texts[code] || code}: ${choice}`);
        if (answers.length) card.append(element("p", { textContent: answers.join(" · ") }));
        const list = element("ul");
        for (const finding of read.findings) {
          list.append(element("li", { textContent: [`${finding.label || finding.kind}`, `${finding.voxels ?? 0} voxels`, finding.confidence != null && `confidence ${finding.confidence}`].filter(Boolean).join(", ") }));
        }
        if (!read.findings.length) list.append(element("li", { className: "muted", textContent: "no findings" }));
        card.append(list);
        if (read.final_impression) card.append(element("p", { className: "muted", textContent: read.final_impression }));
        return card;
      }),
    );
  }

  _renderFindings() {
    const table = this.$("findings");
    const groups = this.case.agreement?.findings || [];
    table.hidden = !groups.length;
    const names = readerNames(this.case);
    table.tBodies[0].replaceChildren(
      ...groups.map((group) => {
        const row = element("tr");
        const worstPair = group.pairs.reduce((worst, p) => (worst && worst.dice <= p.dice ? worst : p), null);
        for (const text of [
          String(group.group),
          group.marked_by.map((m) => names.get(m.reading)).join(", "),
          group.missed_by.map((pk) => names.get(pk)).join(", ") || "—",
          worstPair ? worstPair.dice.toFixed(2) : "—",
          worstPair && worstPair.hd95_mm != null ? worstPair.hd95_mm.toFixed(1) : "—",
        ]) {
          row.append(element("td", { textContent: text }));
        }
        return row;
      }),
    );
  }

  _renderSources() {
    const sources = this.case.reads.map((read) => `reading:${read.reading}`);
    if (this.case.fusion) sources.push("majority", "staple");
    if (this.case.reference) sources.push("reference");
    this.$("sources").replaceChildren(
      ...sources.map((source) => {
        const label = element("label");
        const input = element("input", { type: "radio", name: "adj-source", value: source, checked: this.shown?.source === source });
        input.addEventListener("change", () => this.show(source));
        label.append(input, ` ${labelOf(source, this.case)}`);
        return label;
      }),
    );
    const staple = this.case.fusion?.staple?.readers || [];
    const names = readerNames(this.case);
    this.$("staple").textContent = staple.length
      ? `STAPLE's estimates: ${staple
          .map((r) => `${names.get(r.reading)} sensitivity ${fixed(r.sensitivity)}, specificity ${fixed(r.specificity, 4)}`)
          .join("; ")}`
      : "";
  }

  _renderHistory() {
    const references = this.case.references || [];
    this.$("history").hidden = !references.length;
    this.$("history-list").replaceChildren(
      ...references.map((r) =>
        element("li", {
          textContent: `v${r.version} by ${r.adjudicator}: ${r.source}${r.fusion ? ` (from ${r.fusion})` : ""}, ${r.mask_voxels} voxels. ${r.rationale}`,
        }),
      ),
    );
  }

  /** Each question starts at the readers' most common answer (the reference's, once there is one). */
  _prefillAnswers() {
    this.root.querySelectorAll("[data-adj-question]").forEach((fieldset) => {
      const code = fieldset.dataset.adjQuestion;
      const given = this.case.reference?.answers?.[code] ?? mostCommon(this.case.reads.map((r) => r.answers?.[code]).filter(Boolean));
      fieldset.querySelectorAll("input").forEach((r) => {
        r.checked = r.value === given;
      });
    });
  }

  async _call(method, url, body) {
    let response;
    try {
      response = await fetch(url, {
        method,
        credentials: "same-origin",
        headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      this._say("The server cannot be reached: nothing was saved. Try again.", "error");
      return null;
    }
    const answer = await response.json().catch(() => ({}));
    if (response.ok) return answer;
    const detail = answer.detail ? `${answer.detail.charAt(0).toUpperCase()}${answer.detail.slice(1)}` : `The server answered ${response.status}.`;
    this._say(detail, "error");
    if (response.status === 409 && method === "POST") {
      // Show the reference recorded meanwhile, but keep what this adjudicator chose: their
      // answers and source must not silently become the other one's.
      const chosen = [...this.root.querySelectorAll("input[type=radio]:checked")].map((r) => [r.name, r.value]);
      this.case = (await this._call("GET", this.root.dataset.caseUrl)) || this.case;
      this._render();
      for (const [name, value] of chosen) {
        const input = [...this.root.querySelectorAll("input[type=radio]")].find((r) => r.name === name && r.value === value);
        if (input) input.checked = true;
      }
      if (answer.field === "version") {
        const now = this.case.references?.length ? ` (version ${Math.max(...this.case.references.map((r) => r.version))})` : "";
        this._say(`A reference was recorded meanwhile${now}: see the history. Your choices are kept: check them against it and record again.`, "error");
      }
    }
    return null;
  }

  _say(text, tone = "info") {
    const message = this.$("message");
    message.hidden = false;
    message.textContent = text;
    message.dataset.tone = tone;
  }
}

function readerNames(theCase) {
  return new Map(theCase.reads.map((read, k) => [read.reading, `Reader ${String.fromCharCode(65 + k)} (${read.reader})`]));
}

function labelOf(source, theCase) {
  if (source.startsWith("reading:")) return readerNames(theCase).get(Number(source.slice(8))) || source;
  return { majority: "Majority vote", staple: "STAPLE", reference: "Current reference" }[source] || source;
}

function union(parts) {
  const out = {};
  for (const slices of parts) {
    for (const [sop, bytes] of Object.entries(slices)) {
      const into = (out[sop] ??= new Uint8Array(bytes.length));
      for (let i = 0; i < bytes.length; i += 1) if (bytes[i]) into[i] = 1;
    }
  }
  return out;
}

function mostCommon(values) {
  const counts = new Map();
  for (const value of values) counts.set(value, (counts.get(value) || 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
}

function fixed(value, digits = 2) {
  return value == null ? "—" : Number(value).toFixed(digits);
}

function element(tag, properties) {
  return Object.assign(document.createElement(tag), properties);
}
