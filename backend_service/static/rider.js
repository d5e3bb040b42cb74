"use strict";
// The rider's page: a coarse estimate while the ride is filled in (POST /estimate), then the
// accurate figure once it is confirmed (POST /rides, and GET /rides/<id> while it is still
// computing). Same origin only: the page works with nothing but the backend reachable.

const ESTIMATE_DELAY_MS = 250; // ask once typing pauses, not on every key
const POLL_INTERVAL_MS = 1000;
const POLL_FOR_MS = 120000; // then say so rather than ask forever
// The API's field names and the control next to which each one's problem is shown.
const CONTROLS = {
  PULocationID: "pickup",
  DOLocationID: "dropoff",
  trip_distance: "distance",
  datetime: "pickup-time",
};

const $ = (id) => document.getElementById(id);
let estimateTimer;
let estimateSeq = 0; // answers to an older ride than the one shown are dropped
let rideSeq = 0; // the ride being confirmed; editing the form abandons it
let confirming = false;

const minutes = (value) => `${value.toFixed(1)} min`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// One CSV record: fields split on commas, quoted ones unquoted ("" stands for a quote).
function csvFields(line) {
  const fields = [];
  for (const match of line.matchAll(/(?:^|,)(?:"((?:[^"]|"")*)"|([^,]*))/g)) {
    fields.push(match[1] !== undefined ? match[1].replaceAll('""', '"') : match[2]);
  }
  return fields;
}

// Fill both choosers from the TLC zone table, zones grouped by borough.
async function loadZones() {
  const response = await fetch("/static/taxi_zone_lookup.csv");
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const boroughs = new Map();
  for (const line of (await response.text()).split(/\r?\n/).slice(1)) {
    if (!line) continue;
    const [id, borough, zone] = csvFields(line);
    if (!boroughs.has(borough)) boroughs.set(borough, []);
    boroughs.get(borough).push({ id, zone });
  }
  for (const select of [$("pickup"), $("dropoff")]) {
    select.replaceChildren(new Option("Choose a zone", ""));
    for (const [borough, zones] of [...boroughs].sort()) {
      const group = document.createElement("optgroup");
      group.label = borough;
      zones.sort((a, b) => a.zone.localeCompare(b.zone));
      for (const { id, zone } of zones) {
        // The table names a few zones twice (two Coronas): the id tells them apart.
        const twin = zones.filter((z) => z.zone === zone).length > 1;
        group.append(new Option(twin ? `${zone} (zone ${id})` : zone, id));
      }
      select.append(group);
    }
  }
}

// The ride as the API takes it, and what is wrong with it before asking the server.
function readRide() {
  const ride = {};
  const problems = {};
  for (const [name, id] of [["PULocationID", "pickup"], ["DOLocationID", "dropoff"]]) {
    if ($(id).value === "") problems[name] = "Choose a zone.";
    else ride[name] = Number($(id).value);
  }
  const miles = Number($("distance").value); // "" when the browser cannot read a number
  if ($("distance").value === "" || !(miles > 0)) {
    problems.trip_distance = "Enter the distance in miles, more than 0.";
  } else {
    ride.trip_distance = miles;
  }
  if ($("pickup-time").value) ride.datetime = $("pickup-time").value;
  return { ride, problems };
}

// Show each problem next to its control; those of no control go next to the button.
function showProblems(problems) {
  const rest = [];
  for (const [name, id] of Object.entries(CONTROLS)) {
    $(`${id}-error`).textContent = problems[name] || "";
    $(id).toggleAttribute("aria-invalid", Boolean(problems[name]));
  }
  for (const [name, text] of Object.entries(problems)) {
    if (!(name in CONTROLS)) rest.push(`${name}: ${text}`);
  }
  if (rest.length) say(rest.join("; "), true);
}

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function send(method, path, body) {
  try {
    const response = await fetch(path, {
      method,
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: response.status, body: await response.json().catch(() => ({})) };
  } catch {
    return { status: 0, body: { error: { message: "the backend could not be reached" } } };
  }
}

// An error answer in words: field problems next to their fields, the rest by the button.
function showError(status, body) {
  const error = body.error || {};
  if (error.fields) showProblems(error.fields);
  else say(`${error.message || "unexpected answer"} (HTTP ${status}).`, true);
}

function showCoarse(body) {
  if (body.duration_coarse !== undefined) $("coarse").textContent = minutes(body.duration_coarse);
}

function showFinal(body) {
  showCoarse(body);
  $("final").textContent = minutes(body.duration_final);
  $("model-version").textContent = `Model version: ${body.model_version}`;
  say("Done: the accurate figure has arrived.");
}

async function estimate() {
  const seq = ++estimateSeq;
  const { ride, problems } = readRide();
  if (Object.keys(problems).length) return; // not yet a ride: nothing to estimate
  const { status, body } = await send("POST", "/estimate", ride);
  if (seq !== estimateSeq) return;
  showProblems({});
  if (status === 200) showCoarse(body);
  else showError(status, body);
}

function edited() {
  rideSeq += 1; // an accurate figure still on its way is for the ride as it was
  $("coarse").textContent = "—";
  $("final").textContent = "—";
  $("model-version").textContent = "";
  say("");
  clearTimeout(estimateTimer);
  estimateTimer = setTimeout(estimate, ESTIMATE_DELAY_MS);
}

// Ask for the ride until it is done, the form is edited, or POLL_FOR_MS has passed.
async function follow(rideId, seq) {
  const deadline = Date.now() + POLL_FOR_MS;
  while (Date.now() < deadline) {
    await sleep(POLL_INTERVAL_MS);
    if (seq !== rideSeq) return;
    const { status, body } = await send("GET", `/rides/${encodeURIComponent(rideId)}`);
    if (seq !== rideSeq) return;
    if (status === 200 && body.status === "done") return showFinal(body);
    const why = status === 200 ? "" : ` (last check: ${body.error?.message || `HTTP ${status}`})`;
    say(`Still computing the accurate figure…${why}`);
  }
  say("The accurate figure has not arrived yet: confirm again to ask once more.", true);
}

async function confirmRide(event) {
  event.preventDefault();
  if (confirming) return;
  const { ride, problems } = readRide();
  showProblems(problems);
  const invalid = Object.keys(problems);
  if (invalid.length) {
    say("Please correct the fields marked above.", true);
    $(CONTROLS[invalid[0]]).focus();
    return;
  }
  const seq = ++rideSeq;
  ride.ride_id = crypto.getRandomValues(new Uint32Array(4)).join("-");
  confirming = true;
  $("confirm").setAttribute("aria-busy", "true");
  say("Confirming…");
  const { status, body } = await send("POST", "/rides", ride);
  confirming = false;
  $("confirm").removeAttribute("aria-busy");
  if (seq !== rideSeq) return;
  if (status === 200) return showFinal(body);
  if (status === 202) {
    showCoarse(body);
    say("Still computing the accurate figure…");
    return follow(body.ride_id, seq);
  }
  if (status === 503) {
    showCoarse(body); // the coarse figure stands
    const why = body.error?.message || "the service is unavailable";
    say(`No accurate figure for now: ${why}. Confirm again in a moment.`, true);
    return;
  }
  showError(status, body);
}

$("ride").addEventListener("input", edited);
$("ride").addEventListener("submit", confirmRide);
loadZones().catch((err) => say(`The zone list could not be loaded: ${err.message}.`, true));
