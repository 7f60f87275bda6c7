// The reading panel (templates/reviews/reading_panel.html): the reader's own read of the
// study beside the images, over the reviews API (docs/review.md).
//
// unaided-first: the reader paints their own findings and impression with the AI out of
// sight, locks that read, and only then sees the AI; ai-first: the AI is there from the
// start. Then a decision on every AI finding (accept, edit with the brush, override with a
// reason), findings the AI missed, the verdict on the AI's triage, the final impression,
// submit. Every write sends the reading's version: a stale one (the reading changed in
// another tab) gets 409, the panel says so and reloads the reading; nothing is lost that
// the server took.
//
// Masks live in the viewer's labelmap: AI finding k is segment k (as the AI mask has it),
// the reader's added finding n is segment ADDED_BASE + n. Saving one sends exactly that
// segment's voxels, per SOP Instance UID.
import { csrfToken } from "./csrf.js";
import { fetchArrays } from "./viewer_overlays.js";

const ADDED_BASE = 100;
const HEARTBEAT_MS = 15000;
const IDLE_AFTER_MS = 60000; // no input for this long: the reader is away, the time does not count
const WAIT_FOR_AI_MS = 10000;
const KIND_WORDS = { accepted: "Accepted", edited: "Edited", overridden: "Overridden", added: "Added", withdrawn: "Withdrawn" };
const PHASE_WORDS_NO_AI = {
  unaided: "Your read: mark the findings, then lock it.",
  locked: "Your read is locked: answer the questions and submit.",
};
const PHASE_WORDS = {
  unaided: "Unaided read: the AI is hidden until you lock your read.",
  locked: "Unaided read locked. The AI result is not there yet.",
  ai_revealed: "AI revealed: decide on each AI finding.",
  submitted: "Submitted.",
};

/** "urgent (score 0.97)": what the reader agrees or disagrees with. */
function triageWords({ triage, study_score: score }) {
  const level = triage || "no triage level";
  return typeof score === "number" ? `${level} (score ${score.toFixed(2)})` : level;
}

export class ReviewPanel {
  constructor(app, root) {
    this.app = app;
    this.root = root;
    this.readingsUrl = root.dataset.readingsUrl;
    this.reading = null;
    this.current = null; // the AI finding the keys act on
    this.editing = null; // {target, segment, kind, finding?}
    this.aiShownFor = null;
    this.lastInput = performance.now();
    this.activeMs = 0;
    this.$ = (name) => root.querySelector(`[data-review-${name}]`);
    this._wire();
    // An impression being typed is kept in this tab's session storage until the lock or the
    // submission sends it: a reload does not lose it (and it leaves with the tab).
    for (const name of ["unaided-impression", "final-impression"]) {
      this.$(name).addEventListener("input", (event) => this._keepDraft(name, event.target.value));
    }
    this.$("unaided-impression").addEventListener("input", () => this._lockAskAgain());
    // ai-first with the job still running: the overlay follows it; once it is there, ask again.
    app.viewer.addEventListener("aishown", () => this._checkForAi());
    // A confidence, once chosen, gives the keys back to the reading (Enter saves, arrows scroll).
    this.$("confidence").addEventListener("change", (event) => event.target.blur());
  }

  // --- Start -------------------------------------------------------------------------------
  async start() {
    const body = { study_uid: this.root.dataset.studyUid };
    if (this.root.dataset.project) body.project = Number(this.root.dataset.project);
    const reading = await this._call("POST", this.readingsUrl, body, { quiet: true });
    if (!reading) {
      this.root.dataset.reviewState = "unavailable";
      return;
    }
    this._take(reading);
    this._trackActivity();
    await this._showAi();
    this.root.dataset.reviewState = "ready";
  }

  /** What a test wants to know: the reading as the server last answered it. */
  state() {
    return { reading: this.reading, current: this.current, editing: this.editing && { ...this.editing } };
  }

  // --- Decisions -------------------------------------------------------------------------------
  accept(index = this.current) {
    if (this._submitted()) return undefined;
    if (index == null) return this._say("Pick an AI finding first (J and K move between them).");
    return this._decide({ kind: "accepted", finding: index });
  }

  /** Starts editing AI finding `index` with the brush: Save (Enter) posts the new mask. */
  async edit(index = this.current) {
    if (this._submitted()) return undefined;
    const finding = this._aiFinding(index);
    if (!finding) return this._say("Pick an AI finding first (J and K move between them).");
    this.current = index; // J, K and A go on from the finding being edited
    await this.app.overlay.jumpTo(index);
    // Start from the finding's own mask: the reader's marks share the labelmap and may have
    // painted over some of its voxels (a repaint of them still on its way first).
    await this.painting;
    await this._paintFinding(index);
    this._startEditing({ target: `ai-${index}`, segment: index, kind: "edited", finding: index, label: this._finalLabel(index) });
  }

  override(index = this.current) {
    if (this._submitted()) return undefined;
    if (!this._aiFinding(index)) return this._say("Pick an AI finding first (J and K move between them).");
    this.current = index;
    const form = this.$("override");
    form.hidden = false;
    form.dataset.finding = String(index);
    this.$("override-title").textContent = `Override AI finding ${index}: why?`;
    form.querySelector("input[name=reason]")?.focus();
    this._render();
  }

  /** Starts painting a finding of the reader's own (one the AI missed, or any in the unaided read). */
  async addFinding() {
    if (this._submitted() || !(await this._readingSeriesShown())) return;
    const numbers = this.reading.decisions.filter((d) => d.target.startsWith("added-")).map((d) => Number(d.target.slice(6)));
    const next = Math.max(0, ...numbers) + 1;
    this._startEditing({ target: null, segment: ADDED_BASE + next, kind: "added", label: this.$("label").value || this.reading.labels[0] });
  }

  async saveEditing() {
    const editing = this.editing;
    if (!editing) return;
    const mask = this.app.masks.segmentSlices(this.reading.series_uid, editing.segment);
    if (!Object.keys(mask).length) {
      this._say(editing.kind === "edited" ? "The mask is empty: paint the finding, or override it instead." : "Paint the finding on the images first.");
      return;
    }
    const label = this.$("edit-label").value;
    const body = { kind: editing.kind, mask: encodeMask(mask), label };
    if (editing.kind === "edited") body.finding = editing.finding;
    const saved = await this._decide(body);
    if (saved) this._stopEditing();
  }

  async cancelEditing() {
    const editing = this.editing;
    if (!editing) return;
    this._say("");
    this._stopEditing();
    if (editing.kind === "added" && !editing.target) {
      this.app.masks.paintSegment(this.reading.series_uid, editing.segment, {}); // never saved: gone
    } else if (editing.kind === "edited") {
      await this._paintFinding(editing.finding);
    }
    this._paintDecisions(); // put back what the server holds
  }

  withdraw(target) {
    return this._decide({ kind: "withdrawn", target });
  }

  async submitOverride(event) {
    event?.preventDefault();
    const form = this.$("override");
    const reason = form.querySelector("input[name=reason]:checked")?.value;
    if (!reason) return this._say("Choose a reason for the override.");
    const body = { kind: "overridden", finding: Number(form.dataset.finding), reason_code: reason };
    const text = this.$("reason-text").value.trim();
    if (text) body.reason_text = text;
    if (await this._decide(body)) {
      form.hidden = true;
      form.reset();
    }
  }

  // --- Phases ------------------------------------------------------------------------------
  async lock() {
    if (this.editing) return this._say("Save or cancel the finding you are painting first.");
    // Nothing recorded is more often a slip of the hand than a read: the lock asks once more.
    const button = this.root.querySelector('[data-review-act="lock"]');
    if (!this._unaidedRecorded() && !button.dataset.asked) {
      button.dataset.asked = button.textContent;
      button.textContent = "Lock with nothing recorded";
      return this._say("Your unaided read has no finding and no impression. Lock it as it is? Press the button (or Ctrl+Enter) again to confirm.");
    }
    await this._beat(); // the active time so far is the unaided read's
    const body = { version: this.reading.version, unaided_impression: this.$("unaided-impression").value };
    const reading = await this._call("POST", this._url("lock"), body);
    if (!reading) return;
    this._take(reading);
    this._say(reading.ai ? "Your unaided read is locked. The AI result is shown." : "Your unaided read is locked.");
    await this._showAi();
  }

  /** Whether the unaided read holds anything: an impression or a finding of the reader's. */
  _unaidedRecorded() {
    return Boolean(
      this.$("unaided-impression").value.trim() ||
        this.reading.decisions.some((d) => d.target.startsWith("added-") && d.kind !== "withdrawn"),
    );
  }

  /** The lock's confirmation, asked for a read with nothing in it, is withdrawn. */
  _lockAskAgain() {
    const button = this.root.querySelector('[data-review-act="lock"]');
    if (!button?.dataset.asked) return;
    button.textContent = button.dataset.asked;
    delete button.dataset.asked;
  }

  async reveal({ quiet = false } = {}) {
    const reading = await this._call("POST", this._url("reveal"), { version: this.reading.version }, { quiet });
    if (!reading) return;
    this._take(reading);
    await this._showAi();
  }

  async submit() {
    if (this.editing) return this._say("Save or cancel the finding you are painting first.");
    await this._beat(); // a submitted reading takes no more time
    const body = { version: this.reading.version, final_impression: this.$("final-impression").value };
    const agreement = this.root.querySelector("input[name=triage_agreement]:checked")?.value;
    if (agreement) body.triage_agreement = agreement;
    const answers = this._answers();
    if (Object.keys(answers).length) body.answers = answers;
    const reading = await this._call("POST", this._url("submit"), body);
    if (!reading) return;
    this._take(reading);
    this._stopHeartbeat();
    this._say("Reading submitted: your SEG and SR are stored with the study.");
  }

  /** The answers to the project's study-level questions (a consensus project's), as chosen. */
  _answers() {
    const answers = {};
    this.root.querySelectorAll("[data-review-question]").forEach((fieldset) => {
      const chosen = fieldset.querySelector("input:checked")?.value;
      if (chosen) answers[fieldset.dataset.reviewQuestion] = chosen;
    });
    return answers;
  }

  /** Ctrl+Enter: lock the unaided read, or submit once the AI is decided on. */
  finishStep() {
    if (this.reading?.phase === "unaided") return this.lock();
    if (this.reading?.phase === "ai_revealed" || this.reading?.phase === "locked") return this.submit();
    return undefined;
  }

  /** J / K: the next or previous AI finding, shown in the viewer. */
  step(delta) {
    const findings = this.reading?.ai?.findings || [];
    if (!findings.length) return;
    const at = findings.findIndex((f) => f.index === this.current);
    const next = findings[(at + delta + findings.length) % findings.length] || findings[0];
    this.select(next.index);
  }

  select(index) {
    this.current = index;
    this.app.overlay.jumpTo(index);
    this._render();
  }

  // --- Internals ---------------------------------------------------------------------------
  _draftKey(name) {
    return `overread:reading:${this.reading?.id}:${name}`;
  }

  _draft(name) {
    try {
      return window.sessionStorage.getItem(this._draftKey(name)) || "";
    } catch {
      return ""; // storage refused (a private window's quota): nothing kept
    }
  }

  _keepDraft(name, value) {
    if (!this.reading) return;
    try {
      if (value) window.sessionStorage.setItem(this._draftKey(name), value);
      else window.sessionStorage.removeItem(this._draftKey(name));
    } catch {
      // storage refused: the draft lives in the box only, as before
    }
  }

  /** True (and says so) once the reading is submitted: its decisions no longer change. */
  _submitted() {
    if (this.reading?.phase !== "submitted") return false;
    this._say("This reading is submitted: its findings and decisions can no longer change.");
    return true;
  }

  async _decide(fields) {
    if (!this.reading) return null;
    const body = { version: this.reading.version, confidence: this._confidence(), ...fields };
    const answer = await this._call("POST", this._url("decisions"), body);
    if (!answer) return null;
    const { decision, version } = answer;
    this.reading.version = version;
    this.reading.decisions = [...this.reading.decisions.filter((d) => d.target !== decision.target), decision];
    this.root.querySelectorAll("input[name=confidence]").forEach((input) => (input.checked = false)); // it was this decision's
    this._say(`${KIND_WORDS[decision.kind]}: ${describeTarget(decision.target)}${decision.kind === "edited" && decision.dice != null ? ` (Dice with the AI ${decision.dice.toFixed(2)})` : ""}.`);
    this._render();
    // An accept or override after an edit: the finding is the AI's mask again.
    if (decision.kind === "accepted" || decision.kind === "overridden") await this._paintFinding(segmentOf(decision.target));
    this._paintDecisions();
    return decision;
  }

  _startEditing(editing) {
    this.editing = editing;
    this._say(""); // what was said of the last step is old news
    if (this.reading.ai) this._showOverrides(); // an overridden finding being edited is drawn again
    this.app.masks.nameSegment(this.reading.series_uid, editing.segment, editing.label);
    this.app.masks.setActiveSegment(editing.segment);
    this.app.masks.setVisible(true);
    this.app.tools.setTool("Brush");
    this.$("edit-label").value = editing.label;
    this.$("editing-text").textContent =
      editing.kind === "edited"
        ? `Editing AI finding ${editing.finding}: paint (B) and erase (X) its mask, then Save.`
        : "New finding: paint it with the brush (B), then Save.";
    this.$("editing").hidden = false;
    this._render();
  }

  _stopEditing() {
    this.editing = null;
    this.app.masks.forgetHistory();
    if (this.reading?.ai) this._showOverrides();
    this.$("editing").hidden = true;
    this.app.tools.setTool("WindowLevel");
    this._render();
  }

  _take(reading) {
    this.reading = reading;
    const unaided = this.$("unaided-impression");
    if (document.activeElement !== unaided) {
      unaided.value = reading.unaided_impression || (reading.phase === "unaided" ? this._draft("unaided-impression") : "");
    }
    const final = this.$("final-impression");
    if (document.activeElement !== final) {
      const draft = reading.phase === "submitted" ? "" : this._draft("final-impression");
      if (reading.final_impression || draft) final.value = reading.final_impression || draft;
    }
    if (reading.phase !== "unaided") this._keepDraft("unaided-impression", "");
    if (reading.phase === "submitted") this._keepDraft("final-impression", "");
    this.root.querySelectorAll("input[name=triage_agreement]").forEach((r) => {
      r.checked = r.value === reading.triage_agreement;
    });
    this.root.querySelectorAll("[data-review-question]").forEach((fieldset) => {
      const given = reading.answers?.[fieldset.dataset.reviewQuestion];
      if (given) fieldset.querySelectorAll("input").forEach((r) => (r.checked = r.value === given));
    });
    this._render();
  }

  async _showAi() {
    const { reading } = this;
    if (!reading) return;
    if (!reading.ai) {
      this._paintDecisions();
      this._waitForAi();
      return;
    }
    if (this.aiShownFor === reading.ai.job) return;
    const { overlay } = this.app;
    overlay.stopPolling(); // from now on the overlay is the job this reading decides on
    if (overlay.result?.job !== reading.ai.job) {
      const result = { ...reading.ai, status: "succeeded", series_uid: reading.series_uid };
      try {
        await overlay.show(result, await fetchArrays(result));
      } catch (error) {
        this._say(`The AI overlay could not be loaded (${error.message}).`, "error");
        return;
      }
    }
    this.aiShownFor = reading.ai.job;
    this._paintDecisions();
    if (this.current == null && reading.ai.findings.length) this.select(reading.ai.findings[0].index); // shown, not just marked
    this._render();
  }

  _waitsForAi() {
    const { reading } = this;
    return Boolean(reading?.project.show_ai && !reading.ai && ["locked", "ai_revealed"].includes(reading.phase));
  }

  /** Locked (or ai-first) with no AI result yet: look now and then whether one is there. */
  _waitForAi() {
    clearTimeout(this.aiTimer);
    if (this._waitsForAi()) this.aiTimer = setTimeout(() => this._checkForAi(), WAIT_FOR_AI_MS);
  }

  async _checkForAi() {
    if (!this._waitsForAi()) return;
    const reading = await this._call("GET", this.reading.urls.self, undefined, { quiet: true });
    if (reading) Object.assign(this.reading, { ai_ready: reading.ai_ready, ai_withheld: reading.ai_withheld });
    if (this.reading.ai_ready) await this.reveal({ quiet: true });
    else {
      this._render();
      this._waitForAi();
    }
  }

  /** Repaints the labelmap as the reading's current decisions leave it (added and edited masks);
   * an edit waits for it (a late paint would overwrite its start). */
  _paintDecisions() {
    this.painting = this._paintAll();
    return this.painting;
  }

  async _paintAll() {
    const { reading } = this;
    if (!reading || !(await this._readingSeriesShown())) return;
    this._showOverrides();
    const tasks = reading.decisions.map(async (decision) => {
      const segment = segmentOf(decision.target);
      if (segment == null) return;
      if (decision.kind === "withdrawn") {
        this.app.masks.paintSegment(reading.series_uid, segment, {});
      } else if (decision.mask_url && (decision.kind === "added" || decision.kind === "edited")) {
        const slices = await this._mask(decision);
        if (slices) this.app.masks.paintSegment(reading.series_uid, segment, slices, decision.final_label);
      }
    });
    await Promise.all(tasks);
  }

  /** An overridden AI finding's mask is hidden and its box muted, unless it is being edited. */
  _showOverrides() {
    const { reading } = this;
    const overridden = new Set(
      reading.decisions.filter((d) => d.kind === "overridden" && d.target.startsWith("ai-")).map((d) => segmentOf(d.target)),
    );
    if (this.editing?.kind === "edited") overridden.delete(this.editing.segment);
    for (const finding of reading.ai?.findings ?? []) {
      this.app.masks.setSegmentHidden(reading.series_uid, finding.index, overridden.has(finding.index));
    }
    this.app.overlay.setRejected(overridden);
    const decided = reading.decisions.filter((d) => d.target.startsWith("ai-")).map((d) => [segmentOf(d.target), d.kind]);
    this.app.overlay.setDecided(decided);
  }

  /** Paints AI finding `index` as it now stands: the reader's edited mask, else the AI's. */
  async _paintFinding(index) {
    const decision = this.reading.decisions.find((d) => d.target === `ai-${index}`);
    const slices =
      decision?.kind === "edited" && decision.mask_url ? await this._mask(decision) : this.app.overlay.findingSlices(index);
    if (slices) this.app.masks.paintSegment(this.reading.series_uid, index, slices, this._finalLabel(index));
  }

  async _mask(decision) {
    this.masks ??= new Map();
    if (!this.masks.has(decision.id)) {
      const answer = await this._call("GET", decision.mask_url, undefined, { quiet: true });
      if (!answer) return null;
      this.masks.set(decision.id, decodeMask(answer.slices));
    }
    return this.masks.get(decision.id);
  }

  async _readingSeriesShown() {
    const uid = this.reading?.series_uid;
    if (!uid) return false;
    if (this.app.viewer.shownSlots().some((s) => s.seriesUid === uid)) return true;
    try {
      await this.app.viewer.showSeries(uid, this.app.viewer.activeIndex);
      return true;
    } catch {
      this._say("The series you read could not be shown.", "error");
      return false;
    }
  }

  _aiFinding(index) {
    return this.reading?.ai?.findings.find((f) => f.index === Number(index));
  }

  _finalLabel(index) {
    const decision = this.reading.decisions.find((d) => d.target === `ai-${index}`);
    return decision?.final_label || this._aiFinding(index)?.label || this.reading.labels[0];
  }

  /** The confidence chosen for this decision, or null: none is assumed for the reader. */
  _confidence() {
    const chosen = this.root.querySelector("input[name=confidence]:checked");
    return chosen ? Number(chosen.value) : null;
  }

  _url(action) {
    return `${this.reading.urls.self}${action}/`;
  }

  /** fetch + JSON; on an error says why in the panel (409: reloads the reading) and gives null. */
  async _call(method, url, body, { quiet = false } = {}) {
    if (method === "GET") return this._send(method, url, body, { quiet });
    if (this.writing) return null; // a double click, or a key held down: the first write is on its way
    this.writing = true;
    this.root.setAttribute("aria-busy", "true");
    try {
      return await this._send(method, url, body, { quiet });
    } finally {
      this.writing = false;
      this.root.removeAttribute("aria-busy");
    }
  }

  async _send(method, url, body, { quiet }) {
    let response;
    try {
      response = await fetch(url, {
        method,
        credentials: "same-origin",
        headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      if (!quiet) this._say("The server cannot be reached: nothing was saved. Try again.", "error");
      return null;
    }
    const answer = await response.json().catch(() => ({}));
    if (response.ok) return answer;
    if (quiet) return null;
    const detail = answer.detail || `the server answered ${response.status}`;
    if (response.status === 409 && answer.field === "version") {
      this._say("This reading was changed in another window or tab. It now shows what is saved: check it and try again.", "error");
      await this._reload();
    } else {
      this._say(detail.charAt(0).toUpperCase() + detail.slice(1), "error");
    }
    return null;
  }

  async _reload() {
    const reading = await this._call("GET", this.reading.urls.self, undefined, { quiet: true });
    if (reading) {
      this._take(reading);
      await this._showAi();
    }
  }

  _say(text, tone = "info") {
    const message = this.$("message");
    message.hidden = !text;
    message.textContent = text;
    message.dataset.tone = tone;
  }

  // --- Active time ---------------------------------------------------------------------------
  _trackActivity() {
    const seen = () => {
      this.lastInput = performance.now();
    };
    for (const type of ["pointerdown", "pointermove", "keydown", "wheel"]) document.addEventListener(type, seen, { passive: true });
    let last = performance.now();
    this.ticker = setInterval(() => {
      const now = performance.now();
      const away = now - this.lastInput > IDLE_AFTER_MS || document.hidden;
      if (!away) this.activeMs += now - last;
      last = now;
      this._showTime();
    }, 1000);
    this.heartbeat = setInterval(() => this._beat(), HEARTBEAT_MS);
    window.addEventListener("pagehide", () => this.left || this._beat({ leaving: true }));
  }

  async _beat({ leaving = false } = {}) {
    const seconds = Math.min(60, Math.floor(this.activeMs / 1000));
    if (!this.reading || seconds < 1 || this.reading.phase === "submitted") return;
    if (this.writing && !leaving) return; // another write is on its way: these seconds go with the next beat
    this.activeMs -= seconds * 1000;
    const url = this._url("heartbeat");
    if (leaving) {
      fetch(url, { method: "POST", keepalive: true, credentials: "same-origin", headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() }, body: JSON.stringify({ seconds }) });
      return;
    }
    const answer = await this._call("POST", url, { seconds }, { quiet: true });
    if (answer) {
      this.reading.unaided_seconds = answer.unaided_seconds;
      this.reading.aided_seconds = answer.aided_seconds;
    }
  }

  /** Sends the last active time and stops counting (the page is being left). */
  async leave() {
    this._stopHeartbeat();
    await this._beat();
    this.left = true;
  }

  _stopHeartbeat() {
    clearInterval(this.heartbeat);
    clearInterval(this.ticker);
  }

  _showTime() {
    const { reading } = this;
    if (!reading) return;
    const pending = this.activeMs / 1000;
    const unaided = reading.unaided_seconds + (reading.phase === "unaided" ? pending : 0);
    const aided = reading.aided_seconds + (reading.phase === "unaided" ? 0 : pending);
    this.$("time").textContent = reading.project.show_ai
      ? `Active time: unaided ${clock(unaided)}, with the AI ${clock(aided)}`
      : `Active time: reading ${clock(unaided)}, after the lock ${clock(aided)}`;
  }

  // --- Rendering -------------------------------------------------------------------------------
  _render() {
    const { reading } = this;
    if (!reading) return;
    this._lockAskAgain();
    const phase = reading.phase;
    this.root.dataset.phase = phase;
    const words = reading.project.show_ai ? PHASE_WORDS : { ...PHASE_WORDS, ...PHASE_WORDS_NO_AI };
    // The AI held back by the reader's open unaided read of this study in another project.
    // A reader who already saw the AI of this study elsewhere reads it unaided, but not blind.
    const seen = reading.ai_seen_before && (phase === "unaided" || phase === "locked")
      ? " You saw this study's AI in another reading before this one: it is recorded as not blind to the AI."
      : "";
    this.$("phase").textContent = (reading.ai_withheld || words[phase] || phase) + seen;
    const submitted = phase === "submitted";
    this.$("unaided").hidden = phase !== "unaided";
    this.$("reveal").hidden = !(phase === "locked" || (phase === "ai_revealed" && !reading.ai)) || !reading.project.show_ai;
    this.$("study").hidden = phase === "unaided" || submitted;
    this.$("triage").hidden = !reading.ai;
    if (reading.ai) this.$("ai-triage").textContent = triageWords(reading.ai);
    this.$("ai").hidden = !reading.ai;
    this.$("add").disabled = Boolean(this.editing);
    this.$("add-controls").hidden = submitted || Boolean(this.editing); // the editor has its own label
    this.$("done").hidden = !submitted;
    if (submitted) this.$("done-text").textContent = `SEG ${reading.seg_sop_uid || "—"} · SR ${reading.sr_sop_uid || "—"}`;
    this.root.querySelectorAll("[data-review-locked-when-submitted]").forEach((el) => {
      el.disabled = submitted;
    });
    this.$("confidence").hidden = submitted; // it belongs to a next decision: there is none
    this._renderAi();
    this._renderAdded();
    this._showTime();
  }

  _renderAi() {
    const list = this.$("ai-findings");
    const findings = this.reading.ai?.findings || [];
    const open = findings.filter((f) => !this._decisionOn(`ai-${f.index}`)).length;
    this.$("ai-open").textContent = findings.length ? (open ? `${open} of ${findings.length} still to decide` : "All decided") : "The AI found nothing.";
    const busy = Boolean(this.editing) || this.reading.phase !== "ai_revealed";
    list.replaceChildren(
      ...findings.map((finding) => {
        const decision = this._decisionOn(`ai-${finding.index}`);
        const item = element("li", { className: "review-finding" });
        item.dataset.finding = String(finding.index);
        item.dataset.decision = decision?.kind || "";
        if (finding.index === this.current) item.setAttribute("aria-current", "true");
        const show = element("button", { type: "button", className: "finding-name", textContent: `${finding.index}. ${finding.label} · ${Math.round(finding.max_probability * 100)}%` });
        show.title = "Show it (J and K move between findings)";
        show.addEventListener("click", () => this.select(finding.index));
        const status = element("span", { className: "finding-status", textContent: decision ? decisionWords(decision, this.reading.project.override_reasons) : "to decide" });
        const actions = element("span", { className: "finding-actions" });
        for (const [act, text, title] of [
          ["accept", "Accept", "Accept the AI finding as it is (A)"],
          ["edit", "Edit", "Correct its mask or label with the brush (C)"],
          ["override", "Override", "Reject it, with a reason (O)"],
        ]) {
          const button = element("button", { type: "button", textContent: text, title, disabled: busy });
          button.dataset.reviewFindingAct = act;
          button.addEventListener("click", () => this[act](finding.index));
          actions.append(button);
        }
        item.append(show, status);
        if (this.reading.phase !== "submitted") item.append(actions);
        return item;
      }),
    );
  }

  _renderAdded() {
    const added = this.reading.decisions.filter((d) => d.target.startsWith("added-") && d.kind !== "withdrawn");
    const list = this.$("added");
    const frozen = (d) => d.phase === "unaided" && this.reading.phase !== "unaided";
    list.replaceChildren(
      ...added.map((decision) => {
        const item = element("li", { className: "review-added-item" });
        item.dataset.target = decision.target;
        const when = decision.phase === "unaided" ? "unaided read" : "after the AI";
        const show = element("button", {
          type: "button",
          className: "finding-name",
          textContent: `${describeTarget(decision.target)}: ${decision.final_label} (${[when, decision.confidence != null && `confidence ${decision.confidence}`].filter(Boolean).join(", ")})`,
        });
        show.title = "Show it";
        show.addEventListener("click", () => this.showAdded(decision.target));
        item.append(show);
        if (this.reading.phase !== "submitted" && !frozen(decision) && !this.editing) {
          const remove = element("button", { type: "button", textContent: "Withdraw", title: "Take this finding back" });
          remove.addEventListener("click", () => this.withdraw(decision.target));
          item.append(remove);
        }
        return item;
      }),
    );
    this.$("added-empty").hidden = added.length > 0;
  }

  /** Scrolls to the middle slice of one of the reader's own findings. */
  async showAdded(target) {
    const decision = this._decisionOn(target);
    const slices = decision?.mask_url ? await this._mask(decision) : null;
    if (!slices) return;
    const sops = this.reading.slice_uids.filter((sop) => sop in slices);
    const { viewer } = this.app;
    const slot = [viewer.activeSlot, ...viewer.shownSlots()].find((s) => s?.stackReady && s.seriesUid === this.reading.series_uid);
    const index = sops.length && slot ? slot.series.indexOfSop(sops[Math.floor(sops.length / 2)]) : -1;
    if (index < 0) return;
    viewer.setActive(slot.index);
    await viewer.scrollTo(index, slot);
  }

  _decisionOn(target) {
    return this.reading.decisions.find((d) => d.target === target);
  }

  _wire() {
    const labels = this.$("label");
    const editLabel = this.$("edit-label");
    for (const select of [labels, editLabel]) {
      select.replaceChildren(...JSON.parse(this.root.dataset.labels || "[]").map((l) => element("option", { value: l, textContent: l })));
    }
    const actions = {
      add: () => this.addFinding(),
      save: () => this.saveEditing(),
      cancel: () => this.cancelEditing(),
      lock: () => this.lock(),
      reveal: () => this.reveal(),
      submit: () => this.submit(),
      "override-cancel": () => {
        this.$("override").hidden = true;
      },
    };
    this.root.querySelectorAll("[data-review-act]").forEach((button) => {
      button.addEventListener("click", () => actions[button.dataset.reviewAct]?.());
    });
    this.$("override").addEventListener("submit", (event) => this.submitOverride(event));
    this.$("override").addEventListener("change", () => {
      const needsText = this.$("override").querySelector("input[name=reason]:checked")?.dataset.needsText === "true";
      this.$("reason-text").required = needsText;
    });
  }
}

function segmentOf(target) {
  if (target.startsWith("ai-")) return Number(target.slice(3));
  if (target.startsWith("added-")) return ADDED_BASE + Number(target.slice(6));
  return null;
}

function describeTarget(target) {
  return target.startsWith("ai-") ? `AI finding ${target.slice(3)}` : `your finding ${target.slice(6)}`;
}

function decisionWords(decision, reasons = []) {
  const words = [KIND_WORDS[decision.kind]];
  if (decision.kind === "edited" && decision.dice != null) words.push(`Dice ${decision.dice.toFixed(2)}`);
  if (decision.kind === "overridden") {
    const reason = reasons.find((r) => r.code === decision.reason_code);
    words.push(reason?.label || decision.reason_code.replaceAll("_", " "));
    if (decision.reason_text) words.push(`“${decision.reason_text}”`);
  }
  if (decision.confidence != null) words.push(`confidence ${decision.confidence}`);
  return words.join(" · ");
}

function clock(seconds) {
  const s = Math.floor(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** {sop: Uint8Array} -> {sop: base64}, as the API takes masks. */
export function encodeMask(slices) {
  const out = {};
  for (const [sop, bytes] of Object.entries(slices)) {
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    out[sop] = btoa(text);
  }
  return out;
}

export function decodeMask(slices) {
  const out = {};
  for (const [sop, text] of Object.entries(slices || {})) out[sop] = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  return out;
}

function element(tag, properties) {
  return Object.assign(document.createElement(tag), properties);
}
