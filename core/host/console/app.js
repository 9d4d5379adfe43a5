/*
** app.js - the tidepool console: Vue 2 (Debian's libjs-vue, the global build)
** and Chart.js, no build step.
**
** Every figure and action goes through the brand's admin API
** (/admin/{tenant}/...), the same one the tests and curl use; the session
** cookie stands in for the key and the CSRF token rides on every write. The
** API enforces the roles (host/roles.c): the menu only hides what a role may
** not open. Only signing in and out use /console/api/{tenant}/session.
*/
(function () {
  "use strict";

  var WORDS = window.TP_WORDS;

  /* ---- the API */

  var api = {
    tenant: null,
    csrf: null,
    expired: null,            /* called when the session has ended */
    call: function (method, path, body) {
      var headers = { "Accept": "application/json" };
      if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = api.csrf || "";
      if (body !== undefined) headers["Content-Type"] = "application/json";
      return fetch("/admin/" + encodeURIComponent(api.tenant) + path, {
        method: method, credentials: "same-origin", headers: headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          var code = j && j.error && j.error.code;
          if (r.status === 401 && api.expired) api.expired();
          return { status: r.status, ok: r.status >= 200 && r.status < 300, body: j, code: code,
                   message: j && j.error ? j.error.message : "" };
        });
      });
    },
    session: function (method, body) {
      var headers = { "Accept": "application/json" };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (method === "DELETE") headers["X-CSRF-Token"] = api.csrf || "";
      return fetch("/console/api/" + encodeURIComponent(api.tenant) + "/session", {
        method: method, credentials: "same-origin", headers: headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      }).then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (j) {
          return { status: r.status, ok: r.ok, body: j };
        });
      });
    },
  };

  /* ---- formats: money is integer fen, instants are shown in the brand's zone */

  function yuan(fen) {
    if (fen === null || fen === undefined) return "—";
    var neg = fen < 0, n = Math.abs(Math.round(fen));
    var whole = String(Math.floor(n / 100)).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    var cents = String(n % 100);
    return (neg ? "-" : "") + "¥" + whole + "." + (cents.length < 2 ? "0" + cents : cents);
  }

  /* "12.50" -> 1250, or null when it is not an amount of yuan with at most 2 decimals */
  function toFen(text) {
    var m = /^\s*(\d+)(?:\.(\d{1,2}))?\s*$/.exec(String(text));
    if (!m) return null;
    return parseInt(m[1], 10) * 100 + (m[2] ? parseInt((m[2] + "0").slice(0, 2), 10) : 0);
  }

  function percent(x) {
    if (x === null || x === undefined) return "—";
    return (Math.round(x * 1000) / 10).toFixed(1) + "%";
  }

  function localDate(tz, d) {
    return new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit",
                                               day: "2-digit" }).format(d || new Date());
  }

  /* "2026-12-12T10:00" in zone tz -> epoch seconds (the offset found by asking Intl) */
  function zonedToEpoch(text, tz) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(text || "");
    if (!m) return null;
    var guess = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) / 1000;
    for (var i = 0; i < 2; i++) {
      var parts = {};
      new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit",
        day: "2-digit", hour: "2-digit", minute: "2-digit" }).formatToParts(new Date(guess * 1000))
        .forEach(function (p) { parts[p.type] = p.value; });
      var shown = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute) / 1000;
      guess += Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) / 1000 - shown;
    }
    return guess;
  }

  /* epoch seconds -> "2026-12-12T10:00" in zone tz (a datetime-local input's value) */
  function epochToZoned(epoch, tz) {
    var parts = {};
    new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit" }).formatToParts(new Date(epoch * 1000))
      .forEach(function (p) { parts[p.type] = p.value; });
    return parts.year + "-" + parts.month + "-" + parts.day + "T" + parts.hour + ":" + parts.minute;
  }

  var formatMixin = {
    methods: {
      t: function (k) { var w = WORDS[this.$root.lang] || WORDS.zh; return w[k] || k; },
      yuan: yuan,
      percent: percent,
      when: function (x) {
        if (!x) return "—";
        var ms = x > 1e11 ? x : x * 1000;  /* ms or seconds */
        return new Intl.DateTimeFormat(this.$root.lang === "en" ? "en-GB" : "zh-CN", {
          timeZone: this.$root.session.timezone, year: "numeric", month: "2-digit", day: "2-digit",
          hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }).format(new Date(ms));
      },
      can: function (page) { return this.$root.can(page); },
      errorText: function (r) { return (r.code ? r.code + ": " : "") + (r.message || ("HTTP " + r.status)); },
    },
  };
  Vue.mixin(formatMixin);

  /* Which pages each role opens (the menu only: the API decides, roles.c). */
  var PAGES = [
    { id: "today", roles: ["owner", "operator", "finance", "store_manager"] },
    { id: "system", roles: ["owner", "developer", "operator"] },
    { id: "campaigns", roles: ["owner", "operator", "developer"] },
    { id: "activities", roles: ["owner", "operator"] },
    { id: "members", roles: ["owner", "operator", "store_manager"] },
    { id: "orders", roles: ["owner", "finance", "store_manager"] },
    { id: "reports", roles: ["owner", "operator", "finance"] },
    { id: "stores", roles: ["owner", "operator", "finance", "store_manager"] },
  ];

  /* ---- sign-in */

  Vue.component("sign-in", {
    props: ["notice"],
    data: function () {
      var q = new URLSearchParams(location.search);
      return { tenant: q.get("tenant") || localStorage.getItem("tp.tenant") || "", user: "", password: "",
               busy: false, error: "" };
    },
    template:
      '<main class="signin"><div class="card">' +
      '<h2>{{ t("app") }} · {{ t("sign_in") }}</h2>' +
      '<p v-if="notice" class="missing" id="signin-notice">{{ notice }}</p>' +
      '<form class="stack" @submit.prevent="submit" id="signin-form">' +
      '<label>{{ t("brand") }}<input id="signin-tenant" v-model.trim="tenant" required autocomplete="organization"></label>' +
      '<label>{{ t("user") }}<input id="signin-user" v-model.trim="user" required autocomplete="username"></label>' +
      '<label>{{ t("password") }}<input id="signin-password" type="password" v-model="password" required autocomplete="current-password"></label>' +
      '<p v-if="error" class="error" role="alert" id="signin-error">{{ error }}</p>' +
      '<button type="submit" id="signin-submit" :disabled="busy">{{ busy ? t("signing_in") : t("sign_in") }}</button>' +
      '</form></div></main>',
    methods: {
      submit: function () {
        var self = this;
        self.busy = true;
        self.error = "";
        api.tenant = self.tenant;
        api.session("POST", { user: self.user, password: self.password }).then(function (r) {
          self.busy = false;
          self.password = "";
          if (!r.ok) {
            self.error = (r.body.error && (r.body.error.code + ": " + r.body.error.message)) || ("HTTP " + r.status);
            return;
          }
          localStorage.setItem("tp.tenant", self.tenant);
          self.$emit("signed-in", r.body);
        }, function (e) { self.busy = false; self.error = String(e); });
      },
    },
  });

  /* ---- Today: live figures from the analytics reports, every 5 seconds */

  Vue.component("page-today", {
    data: function () {
      return { day: "", overview: null, products: null, perf: null, error: "", refreshedAt: null, timer: null };
    },
    computed: {
      storeQuery: function () {
        var s = this.$root.session;
        return s.store ? "&store=" + encodeURIComponent(s.store) : "";
      },
      total: function () { return this.overview ? this.overview.total : {}; },
      perMinute: function () {
        if (!this.overview) return null;
        var now = Date.now() / 1000, b = null;
        this.overview.buckets.forEach(function (x) { if (x.start <= now) b = x; });
        if (!b) return 0;
        var minutes = Math.max(1, (now - b.start) / 60);
        return Math.round((b.orders / minutes) * 100) / 100;
      },
      top: function () { return this.products ? this.products.items.slice(0, 8) : []; },
    },
    template:
      '<section aria-labelledby="today-title"><h2 id="today-title">{{ t("today") }} · {{ day }}' +
      ' <span v-if="$root.session.store" class="muted">· {{ t("store_scope") }} {{ $root.session.store }}</span></h2>' +
      '<p v-if="error" class="error" role="alert">{{ error }}</p>' +
      '<div class="figures" aria-live="polite">' +
      '<div class="figure"><div class="label">{{ t("gmv") }}</div><div class="value" id="today-gmv" :data-fen="total.gmv_fen">{{ yuan(total.gmv_fen) }}</div></div>' +
      '<div class="figure"><div class="label">{{ t("orders_paid") }}</div><div class="value" id="today-orders">{{ total.orders }}</div></div>' +
      '<div class="figure"><div class="label">{{ t("orders_per_min") }}</div><div class="value" id="today-opm">{{ perMinute }}</div></div>' +
      '<div class="figure"><div class="label">{{ t("payers") }}</div><div class="value" id="today-payers">{{ total.payers }}</div></div>' +
      '<div class="figure"><div class="label">{{ t("uv") }}</div><div class="value" id="today-uv">{{ total.uv }}</div></div>' +
      '<div class="figure"><div class="label">{{ t("conversion") }}</div><div class="value" id="today-conversion">{{ percent(total.conversion) }}</div></div>' +
      '</div>' +
      '<div class="grid2" style="margin-top:1rem">' +
      '<div class="card"><h3>{{ t("gmv_by_hour") }}</h3><div class="chart-box"><canvas id="today-chart" role="img" :aria-label="t(\'gmv_by_hour\')"></canvas></div></div>' +
      '<div class="card"><h3>{{ t("top_products") }}</h3><table id="today-products"><thead><tr><th>{{ t("product") }}</th><th class="num">{{ t("units") }}</th><th class="num">{{ t("gmv") }}</th></tr></thead>' +
      '<tbody><tr v-for="p in top" :key="p.product"><td>{{ p.product }}</td><td class="num">{{ p.units }}</td><td class="num">{{ yuan(p.gmv_fen) }}</td></tr>' +
      '<tr v-if="!top.length"><td colspan="3" class="muted">{{ t("no_rows") }}</td></tr></tbody></table></div>' +
      '</div>' +
      '<div v-if="perf" class="card" id="today-store"><h3>{{ t("store_performance") }} · {{ $root.session.store }}</h3>' +
      '<p>{{ t("orders_paid") }} <strong>{{ perf.orders }}</strong> · {{ t("sales") }} <strong>{{ yuan(perf.sales_fen) }}</strong> · {{ t("commission") }} {{ yuan(perf.commission_fen) }}</p>' +
      '<table><thead><tr><th>{{ t("guide") }}</th><th class="num">{{ t("orders_paid") }}</th><th class="num">{{ t("sales") }}</th></tr></thead><tbody>' +
      '<tr v-for="g in perf.guides" :key="g.guide"><td>{{ g.guide }}</td><td class="num">{{ g.orders }}</td><td class="num">{{ yuan(g.sales_fen) }}</td></tr></tbody></table></div>' +
      '<p class="muted">{{ t("refreshed") }} <span id="today-refreshed">{{ refreshedAt ? when(refreshedAt) : "—" }}</span></p>' +
      '</section>',
    created: function () { this.day = localDate(this.$root.session.timezone); },
    mounted: function () {
      this.load();
      this.timer = setInterval(this.load, 5000);
    },
    beforeDestroy: function () {
      clearInterval(this.timer);
      if (this.chart) this.chart.destroy();
    },
    methods: {
      load: function () {
        var self = this, day = localDate(this.$root.session.timezone), q = "?from=" + day + "&to=" + day;
        self.day = day;
        var s = this.$root.session;
        var calls = [api.call("GET", "/analytics/overview" + q + "&granularity=hour" + this.storeQuery),
                     api.call("GET", "/analytics/products" + q + this.storeQuery)];
        if (s.store) calls.push(api.call("GET", "/referral/stores/" + encodeURIComponent(s.store) + "/performance"));
        Promise.all(calls).then(function (rs) {
          var bad = rs.filter(function (r) { return !r.ok; })[0];
          self.error = bad ? self.errorText(bad) : "";
          if (rs[0].ok) self.overview = rs[0].body;
          if (rs[1].ok) self.products = rs[1].body;
          if (rs[2] && rs[2].ok) self.perf = rs[2].body;
          self.refreshedAt = Date.now();
          self.draw();
        });
      },
      draw: function () {
        if (!this.overview || !window.Chart) return;
        var labels = this.overview.buckets.map(function (b) { return String(b.label).slice(11, 16) || b.label; });
        var data = this.overview.buckets.map(function (b) { return b.gmv_fen / 100; });
        if (this.chart) {
          this.chart.data.labels = labels;
          this.chart.data.datasets[0].data = data;
          this.chart.update("none");
          return;
        }
        var el = document.getElementById("today-chart");
        if (!el) return;
        this.chart = new Chart(el, {
          type: "bar",
          data: { labels: labels, datasets: [{ label: this.t("gmv"), data: data, backgroundColor: "#0b6e6e" }] },
          options: { responsive: true, maintainAspectRatio: false, animation: false,
                     plugins: { legend: { display: false } } },
        });
      },
    },
  });

  /* ---- System: plugins, dead letters, recorded runs */

  Vue.component("page-system", {
    data: function () {
      return { plugins: [], jobs: [], events: [], runs: [], error: "", notice: "", busy: false, showRuns: true };
    },
    template:
      '<section aria-labelledby="system-title"><h2 id="system-title">{{ t("system") }}</h2>' +
      '<p v-if="error" class="error" role="alert" id="system-error">{{ error }}</p>' +
      '<p v-if="notice" class="notice" role="status" id="system-notice">{{ notice }}</p>' +
      '<div class="row"><h3>{{ t("plugins") }}</h3><button class="secondary" @click="reload(null)" :disabled="busy" id="reload-all">{{ t("reload_all") }}</button></div>' +
      '<div class="scroll"><table id="system-plugins"><thead><tr><th>{{ t("name") }}</th><th>{{ t("version") }}</th><th>{{ t("status") }}</th><th>{{ t("last_error") }}</th><th>{{ t("actions") }}</th></tr></thead><tbody>' +
      '<tr v-for="p in plugins" :key="p.name" :data-plugin="p.name"><td>{{ p.name }}</td><td>{{ p.version || "—" }}</td>' +
      '<td :class="\'status-\' + p.status">{{ p.status }}</td><td><pre v-if="p.last_error" class="last-error">{{ p.last_error }}</pre><span v-else class="muted">—</span></td>' +
      '<td><button class="secondary" @click="reload(p.name)" :disabled="busy" :aria-label="t(\'reload\') + \' \' + p.name">{{ t("reload") }}</button></td></tr>' +
      '</tbody></table></div>' +
      '<h3>{{ t("dead_jobs") }} ({{ jobs.length }})</h3>' +
      '<div class="scroll"><table id="system-dead-jobs"><thead><tr><th>{{ t("id") }}</th><th>{{ t("plugin") }}</th><th>{{ t("name") }}</th><th class="num">{{ t("attempts") }}</th><th>{{ t("last_error") }}</th><th>{{ t("actions") }}</th></tr></thead><tbody>' +
      '<tr v-for="j in jobs.concat(events)" :key="j.id" :data-job="j.id"><td>{{ j.id }}</td><td>{{ j.plugin }}</td><td>{{ j.kind }} {{ j.name }}</td><td class="num">{{ j.attempts }}</td><td><code>{{ j.last_error }}</code></td>' +
      '<td class="row"><button @click="retry(j)" :disabled="busy" :aria-label="t(\'retry\') + \' \' + j.id" class="retry">{{ t("retry") }}</button>' +
      '<button class="danger" @click="remove(j)" :disabled="busy" :aria-label="t(\'delete\') + \' \' + j.id">{{ t("delete") }}</button></td></tr>' +
      '<tr v-if="!jobs.length && !events.length"><td colspan="6" class="muted">{{ t("no_rows") }}</td></tr></tbody></table></div>' +
      '<h3>{{ t("runs") }}</h3>' +
      '<div class="scroll"><table id="system-runs"><thead><tr><th>{{ t("id") }}</th><th>{{ t("at") }}</th><th>{{ t("plugin") }}</th><th>{{ t("kind") }}</th><th>{{ t("outcome") }}</th><th>{{ t("replay") }}</th></tr></thead><tbody>' +
      '<tr v-for="r in runs" :key="r.id"><td>{{ r.id }}</td><td>{{ when(r.at_ms) }}</td><td>{{ r.plugin }}</td><td>{{ r.kind }} {{ r.name }}</td><td>{{ r.outcome }} {{ r.code || "" }}</td>' +
      '<td><pre>{{ replay(r) }}</pre></td></tr>' +
      '<tr v-if="!runs.length"><td colspan="6" class="muted">{{ t("no_rows") }}</td></tr></tbody></table></div>' +
      '</section>',
    mounted: function () { this.load(); },
    methods: {
      load: function () {
        var self = this;
        var calls = [api.call("GET", "/plugins"), api.call("GET", "/jobs?state=dead"),
                     api.call("GET", "/events?state=dead"), api.call("GET", "/runs?limit=20")];
        return Promise.all(calls).then(function (rs) {
          var bad = rs.filter(function (r) { return !r.ok; })[0];
          self.error = bad ? self.errorText(bad) : "";
          if (rs[0].ok) self.plugins = rs[0].body.plugins;
          if (rs[1].ok) self.jobs = rs[1].body.jobs;
          if (rs[2].ok) self.events = rs[2].body.events;
          if (rs[3].ok) self.runs = rs[3].body.runs;
        });
      },
      reload: function (name) {
        var self = this;
        self.busy = true;
        self.notice = "";
        api.call("POST", "/reload", name ? { plugin: name } : {}).then(function (r) {
          self.busy = false;
          if (r.ok) self.notice = self.t("reloaded") + (name ? " " + name : "");
          else self.error = self.errorText(r) + (r.body.error && r.body.error.details ? "\n" +
            (r.body.error.details.failed || []).map(function (f) { return f.plugin + ": " + f.error; }).join("\n") : "");
          return self.load().then(function () { if (!r.ok) self.error = self.errorText(r); });
        });
      },
      retry: function (j) { this.act("POST", "/jobs/" + j.id + "/retry"); },
      remove: function (j) { this.act("DELETE", "/jobs/" + j.id); },
      act: function (method, path) {
        var self = this;
        self.busy = true;
        api.call(method, path).then(function (r) {
          self.busy = false;
          if (!r.ok) self.error = self.errorText(r);
          else self.notice = method + " " + path + ": " + r.body.state;
          self.load();
        });
      },
      replay: function (r) {
        return "curl -s " + location.origin + "/admin/" + api.tenant + "/runs/" + r.id +
               " -H \"X-Api-Key: $KEY\" > run-" + r.id + ".json\ntidepool test plugins/" + r.plugin +
               " --replay run-" + r.id + ".json";
      },
    },
  });

  /* ---- Campaigns: the brand's campaign scripts, as plugins campaign_<file> */

  Vue.component("page-campaigns", {
    data: function () {
      return { plugins: [], error: "", notice: "", busy: false, open: null, source: null, view: null,
               viewError: "", clock: null, hours: "24", advanced: null, rehearsal: null, tryout: null };
    },
    computed: {
      campaigns: function () { return this.plugins.filter(function (p) { return p.name.indexOf("campaign_") === 0; }); },
      openPlugin: function () {
        var self = this;
        return this.plugins.filter(function (p) { return p.name === self.open; })[0] || null;
      },
      /* the lines of the script an error names as file:line, to mark them */
      badLines: function () {
        var p = this.openPlugin, file = this.source && this.source.file, out = {};
        var text = (this.error || "") + "\n" + ((p && p.last_error) || "") + "\n" + ((this.tryout && this.tryout.output) || "");
        if (!file) return out;
        var re = new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&") + ":(\\d+):", "g"), m;
        while ((m = re.exec(text))) out[m[1]] = true;
        return out;
      },
      lines: function () { return this.source ? this.source.source.replace(/\n$/, "").split("\n") : []; },
    },
    template:
      '<section aria-labelledby="campaigns-title"><h2 id="campaigns-title">{{ t("campaigns") }}</h2>' +
      '<p v-if="error" class="error" role="alert" id="campaigns-error">{{ error }}</p>' +
      '<p v-if="notice" class="notice" role="status">{{ notice }}</p>' +
      '<div class="scroll"><table id="campaigns-table"><thead><tr><th>{{ t("name") }}</th><th>{{ t("status") }}</th><th>{{ t("version") }}</th><th>{{ t("last_error") }}</th><th>{{ t("actions") }}</th></tr></thead><tbody>' +
      '<tr v-for="p in campaigns" :key="p.name" :data-campaign="p.name"><td>{{ p.name.slice(9) }}</td><td :class="\'status-\' + p.status">{{ p.status }}</td><td>{{ p.version || "—" }}</td>' +
      '<td><pre v-if="p.last_error" class="campaign-error">{{ p.last_error }}</pre><span v-else class="muted">—</span></td>' +
      '<td class="row"><button class="secondary campaign-source" @click="show(p.name)" :aria-label="t(\'source\') + \' \' + p.name">{{ t("source") }}</button>' +
      '<button class="secondary campaign-check" @click="tryOut(p.name, \'check\')" :disabled="busy" :aria-label="t(\'check\') + \' \' + p.name">{{ t("check") }}</button>' +
      '<button class="secondary campaign-preview" @click="tryOut(p.name, \'preview\')" :disabled="busy" :aria-label="t(\'preview\') + \' \' + p.name">{{ t("preview") }}</button>' +
      '<button class="secondary campaign-reload" @click="reload(p.name)" :disabled="busy" :aria-label="t(\'reload\') + \' \' + p.name">{{ t("reload") }}</button></td></tr>' +
      '<tr v-if="!campaigns.length"><td colspan="5" class="muted">{{ t("no_rows") }}</td></tr></tbody></table></div>' +
      '<div v-if="open" class="grid2" style="margin-top:1rem">' +
      '<div class="card"><h3>{{ source ? source.file : open }}</h3>' +
      '<ol class="source" id="campaign-source"><li v-for="(line, i) in lines" :key="i" :class="{ bad: badLines[i + 1] }" :data-line="i + 1"><code>{{ line || " " }}</code></li></ol></div>' +
      '<div class="card" id="campaign-view"><h3>{{ t("state") }}</h3>' +
      '<p v-if="viewError" class="muted">{{ viewError }}</p>' +
      '<template v-if="view"><p><strong id="campaign-state">{{ view.state }}</strong> · {{ when(view.starts_at) }} – {{ when(view.ends_at) }}</p>' +
      '<table><thead><tr><th>{{ t("kind") }}</th><th>{{ t("id") }}</th><th>{{ t("title") }}</th></tr></thead><tbody>' +
      '<tr v-for="it in view.items" :key="it.id"><td>{{ it.kind }}</td><td>{{ it.plugin }}:{{ it.activity_id }}</td><td>{{ it.summary }}</td></tr></tbody></table>' +
      '<h3>{{ t("timeline") }}</h3><ul><li v-for="(e, i) in (view.timeline || [])" :key="i">{{ e.local_time }} · {{ e.what }}</li></ul></template></div>' +
      '</div>' +
      '<div class="card" id="test-clock" style="margin-top:1rem" v-if="clock"><h3>{{ t("test_clock") }}</h3>' +
      '<p>{{ clock.clock === "manual" ? t("clock_manual") : t("clock_wall") }} · <strong id="clock-now">{{ when(clock.now) }}</strong></p>' +
      '<form v-if="clock.clock === \'manual\'" class="inline" @submit.prevent="advance">' +
      '<label>{{ t("advance_hours") }}<input id="clock-hours" type="number" min="0" step="1" v-model="hours"></label>' +
      '<button type="submit" id="clock-advance" :disabled="busy">{{ t("advance") }}</button></form>' +
      '<p v-if="advanced !== null" role="status" id="clock-ran">{{ t("tasks_run") }}: {{ advanced }}</p>' +
      '<p v-if="clock.clock !== \'manual\' && rehearsal"><a id="rehearse-link" :href="\'?tenant=\' + rehearsal">{{ t("rehearse_on") }} {{ rehearsal }}</a></p></div>' +
      '<div v-if="tryout" class="card" id="campaign-tryout" style="margin-top:1rem"><h3>{{ t(tryout.mode) }} · {{ tryout.name.slice(9) }} · ' +
      '<span :class="tryout.ok ? \'ok\' : \'error\'" id="tryout-verdict">{{ tryout.ok ? t("tryout_ok") : t("tryout_problem") }}</span></h3>' +
      '<pre id="tryout-output">{{ tryout.output }}</pre><p class="muted">{{ t("tryout_note") }}</p></div>' +
      '</section>',
    mounted: function () { this.load(); this.loadClock(); },
    methods: {
      /* check or preview: the script tried on a copy of the brand's data by the host's
      ** `tidepool campaign`; its problems come as file:line, marked in the source */
      tryOut: function (name, mode) {
        var self = this;
        self.busy = true;
        self.tryout = null;
        api.call("POST", "/campaigns/" + encodeURIComponent(name.slice(9)) + "/" + mode).then(function (r) {
          self.busy = false;
          self.error = r.ok ? "" : self.errorText(r);
          if (!r.ok) return;
          self.tryout = { name: name, mode: mode, ok: r.body.ok, output: r.body.output };
          if (self.open !== name) self.show(name);
        });
      },
      /* the brand's clock; a rehearsal brand's (the test clock) moves from here, and a live
      ** brand points to its rehearsal brand when the host serves one (<id>-rehearsal) */
      loadClock: function () {
        var self = this, twin = api.tenant + "-rehearsal";
        api.call("GET", "/clock").then(function (r) { self.clock = r.ok ? r.body : null; });
        fetch("/console/api/" + encodeURIComponent(twin) + "/session", { credentials: "same-origin" }).then(function (r) {
          self.rehearsal = r.status === 404 ? null : twin;  /* 401: it exists, not signed in there yet */
        });
      },
      advance: function () {
        var self = this, h = Number(self.hours);
        if (!(h >= 0)) return;
        self.busy = true;
        api.call("POST", "/clock/advance", { seconds: Math.round(h * 3600) }).then(function (r) {
          self.busy = false;
          self.error = r.ok ? "" : self.errorText(r);
          if (r.ok) { self.clock = r.body; self.advanced = r.body.tasks_run; self.load(); }
        });
      },
      load: function () {
        var self = this;
        return api.call("GET", "/plugins").then(function (r) {
          if (r.ok) self.plugins = r.body.plugins;
          else self.error = self.errorText(r);
        });
      },
      show: function (name) {
        var self = this;
        self.open = name;
        self.source = self.view = null;
        self.viewError = "";
        api.call("GET", "/plugins/" + encodeURIComponent(name) + "/source").then(function (r) {
          if (r.ok) self.source = r.body; else self.error = self.errorText(r);
        });
        api.call("GET", "/campaigns/" + encodeURIComponent(name.slice(9))).then(function (r) {
          if (r.ok) self.view = r.body;
          else self.viewError = r.code === "route_not_found" ? self.t("campaign_not_loaded") : self.errorText(r);
        });
      },
      reload: function (name) {
        var self = this;
        self.busy = true;
        self.error = self.notice = "";
        api.call("POST", "/reload", { plugin: name }).then(function (r) {
          self.busy = false;
          var failed = r.body.error && r.body.error.details && r.body.error.details.failed;
          if (r.ok) self.notice = self.t("reloaded") + " " + name;
          else self.error = failed && failed.length ? failed.map(function (f) { return f.error; }).join("\n") : self.errorText(r);
          self.load();
          if (self.open === name) self.show(name);
        });
      },
    },
  });

  /* ---- a create form built from a route's request body in the admin OpenAPI
  ** document: each property an input of its type (fen as yuan, *_at as the
  ** brand's local time), the API's field error beside its field */

  var openapiCache = null;
  function adminDoc() {
    if (!openapiCache) openapiCache = api.call("GET", "/openapi.json").then(function (r) { return r.ok ? r.body : null; });
    return openapiCache;
  }

  Vue.component("schema-form", {
    props: ["path", "prefix", "itemId"],  /* itemId: edit that item (PATCH path/id), its values first */
    data: function () { return { schema: null, values: {}, errors: {}, error: "", notice: "", busy: false }; },
    computed: {
      fields: function () {
        var sc = this.schema, req = (sc && sc.required) || [];
        if (!sc || !sc.properties) return [];
        return Object.keys(sc.properties).map(function (k) {
          var p = sc.properties[k], kind = p.enum ? "enum" : p.type === "boolean" ? "boolean"
            : p.type === "integer" && /_fen$/.test(k) ? "fen" : p.type === "integer" && /_at$/.test(k) ? "time"
            : p.type === "integer" || p.type === "number" ? "number" : p.type === "string" ? "text" : "json";
          return { key: k, kind: kind, required: req.indexOf(k) >= 0, doc: p.description || "", values: p.enum || [] };
        }).sort(function (a, b) { return (b.required ? 1 : 0) - (a.required ? 1 : 0); });  /* required first, stable */
      },
    },
    template:
      '<form class="stack schema-form" @submit.prevent="submit" novalidate>' +
      '<p v-if="!schema" class="muted">{{ t("loading") }}</p>' +
      '<label v-for="f in fields" :key="f.key"><span>{{ f.key }}<span v-if="f.required" aria-hidden="true"> *</span>' +
      ' <small class="muted">{{ f.kind === "fen" ? "(¥) " : "" }}{{ f.doc }}</small></span>' +
      '<select v-if="f.kind === \'enum\'" :id="prefix + f.key" v-model="values[f.key]" :aria-invalid="errors[f.key] ? \'true\' : \'false\'"><option value=""></option><option v-for="v in f.values" :value="v">{{ v }}</option></select>' +
      '<input v-else-if="f.kind === \'boolean\'" type="checkbox" :id="prefix + f.key" v-model="values[f.key]">' +
      '<textarea v-else-if="f.kind === \'json\'" rows="2" :id="prefix + f.key" v-model="values[f.key]" placeholder="JSON" :aria-invalid="errors[f.key] ? \'true\' : \'false\'"></textarea>' +
      '<input v-else :type="f.kind === \'time\' ? \'datetime-local\' : f.kind === \'number\' ? \'number\' : \'text\'" :id="prefix + f.key" v-model="values[f.key]" :required="f.required" :aria-invalid="errors[f.key] ? \'true\' : \'false\'" :aria-describedby="prefix + f.key + \'-error\'">' +
      '<span class="field-error" :id="prefix + f.key + \'-error\'" role="alert">{{ errors[f.key] || "" }}</span></label>' +
      '<p v-if="error" class="error" role="alert">{{ error }}</p><p v-if="notice" class="notice" role="status" :id="prefix + \'notice\'">{{ notice }}</p>' +
      '<button type="submit" :id="prefix + \'submit\'" :disabled="busy || !schema">{{ itemId ? t("save") : t("create") }}</button></form>',
    mounted: function () {
      var self = this;
      adminDoc().then(function (doc) {
        var op = doc && doc.paths["/admin/" + api.tenant + self.path + (self.itemId ? "/{id}" : "")];
        var body = op && (self.itemId ? op.patch : op.post);
        body = body && body.requestBody;
        self.schema = body ? body.content["application/json"].schema : { properties: {} };
        if (self.itemId) self.fill();
      });
    },
    methods: {
      /* editing: the item's values, in the form's units (yuan, the brand's local time, JSON) */
      fill: function () {
        var self = this, tz = self.$root.session.timezone;
        api.call("GET", self.path + "/" + self.itemId).then(function (r) {
          if (!r.ok) { self.error = self.errorText(r); return; }
          var v = {};
          self.fields.forEach(function (f) {
            var x = r.body[f.key];
            if (x === undefined || x === null) return;
            v[f.key] = f.kind === "fen" ? (x / 100).toFixed(2) : f.kind === "time" ? epochToZoned(x, tz)
              : f.kind === "json" ? JSON.stringify(x) : f.kind === "boolean" ? !!x : String(x);
          });
          self.values = v;
        });
      },
      submit: function () {
        var self = this, body = {}, errs = {}, tz = self.$root.session.timezone;
        self.fields.forEach(function (f) {
          var v = self.values[f.key];
          if (v === undefined || v === "" || (f.kind === "boolean" && v === false && !f.required)) return;
          if (f.kind === "fen") { var fen = toFen(v); if (fen === null) errs[f.key] = "¥ 9.90"; else body[f.key] = fen; }
          else if (f.kind === "time") { var e = zonedToEpoch(v, tz); if (e === null) errs[f.key] = "?"; else body[f.key] = e; }
          else if (f.kind === "number") body[f.key] = Number(v);
          else if (f.kind === "json") { try { body[f.key] = JSON.parse(v); } catch (x) { errs[f.key] = String(x); } }
          else body[f.key] = v;
        });
        self.errors = errs;
        self.error = self.notice = "";
        if (Object.keys(errs).length) return;
        self.busy = true;
        var editing = self.itemId;
        api.call(editing ? "PATCH" : "POST", editing ? self.path + "/" + editing : self.path, body).then(function (r) {
          self.busy = false;
          if (r.ok) {
            self.notice = (editing ? self.t("saved") : self.t("created")) + " #" + (r.body.id || editing || "");
            self.$emit("created", r.body);
            return;
          }
          var field = r.body.error && r.body.error.details && r.body.error.details.field;
          var top = field && String(field).split(/[.[]/)[0];
          if (top && self.schema.properties[top]) { var e = {}; e[top] = r.message; self.errors = e; }
          else self.error = self.errorText(r);
        });
      },
    },
  });

  /* ---- Activities: flash sales, with the API's field errors beside the field */

  var SALE_FIELDS = ["sku", "title", "price_fen", "quantity", "per_user_limit", "starts_at", "ends_at"];

  Vue.component("page-activities", {
    data: function () {
      return { sales: [], others: [], groups: null, creating: "flash_sale",
               creators: [{ id: "flash_sale", word: "flash_sales" }, { id: "group_buy", word: "group_buy", path: "/group-buys" },
                          { id: "bargain", word: "bargain", path: "/bargain/activities" },
                          { id: "coupon", word: "coupon", path: "/coupons/templates" }],
               error: "", notice: "", busy: false, fieldErrors: {}, editing: null, otherEdit: null,
               form: { sku: "", title: "", price: "", quantity: "", per_user_limit: "1", starts_at: "", ends_at: "" } };
    },
    template:
      '<section aria-labelledby="activities-title"><h2 id="activities-title">{{ t("activities") }} · {{ t("flash_sales") }}</h2>' +
      '<p v-if="error" class="error" role="alert" id="activities-error">{{ error }}</p>' +
      '<p v-if="notice" class="notice" role="status" id="activities-notice">{{ notice }}</p>' +
      '<div class="scroll"><table id="sales-table"><thead><tr><th>{{ t("id") }}</th><th>{{ t("title") }}</th><th>{{ t("sku") }}</th><th class="num">{{ t("price") }}</th><th class="num">{{ t("sold") }}</th><th class="num">{{ t("remaining") }}</th><th>{{ t("state") }}</th><th>{{ t("starts_at") }}</th><th>{{ t("ends_at") }}</th><th>{{ t("actions") }}</th></tr></thead><tbody>' +
      '<tr v-for="s in sales" :key="s.id" :data-sale="s.id"><td>{{ s.id }}</td><td>{{ s.title }}</td><td>{{ s.sku }}</td><td class="num">{{ yuan(s.price_fen) }}</td><td class="num">{{ s.sold }}</td><td class="num">{{ s.remaining }}</td><td :class="\'state-\' + s.state">{{ s.state }}</td><td>{{ when(s.starts_at) }}</td><td>{{ when(s.ends_at) }}</td>' +
      '<td><button class="secondary sale-toggle" @click="toggle(s)" :disabled="busy" :aria-label="(s.status === \'active\' ? t(\'pause\') : t(\'resume\')) + \' \' + s.id">{{ s.status === "active" ? t("pause") : t("resume") }}</button>' +
      ' <button class="secondary sale-edit" @click="edit(s)" :disabled="busy" :aria-label="t(\'edit\') + \' \' + s.id">{{ t("edit") }}</button></td></tr>' +
      '<tr v-if="!sales.length"><td colspan="10" class="muted">{{ t("no_rows") }}</td></tr></tbody></table></div>' +
      '<h3>{{ t("other_activities") }}</h3>' +
      '<div class="scroll"><table id="other-activities"><thead><tr><th>{{ t("kind") }}</th><th>{{ t("id") }}</th><th>{{ t("title") }}</th><th>{{ t("sku") }}</th><th class="num">{{ t("price") }}</th><th>{{ t("state") }}</th><th></th></tr></thead><tbody>' +
      '<tr v-for="a in others" :key="a.kind + a.id"><td>{{ t(a.kind) }}</td><td>{{ a.id }}</td><td>{{ a.title }}</td><td>{{ a.sku }}</td><td class="num">{{ a.price_fen != null ? yuan(a.price_fen) : "—" }}</td><td>{{ a.state }}</td>' +
      '<td class="row"><button v-if="a.kind === \'group_buy\'" class="secondary" @click="showGroups(a.id)" :aria-label="t(\'groups\') + \' \' + a.id">{{ t("groups") }}</button>' +
      '<button class="secondary activity-edit" :data-activity="a.kind + \'-\' + a.id" @click="editOther(a)" :aria-label="t(\'edit\') + \' \' + a.id">{{ t("edit") }}</button></td></tr>' +
      '<tr v-if="!others.length"><td colspan="7" class="muted">{{ t("no_rows") }}</td></tr></tbody></table></div>' +
      '<div v-if="otherEdit" class="card" id="activity-edit" style="margin-top:1rem"><h3>{{ t("edit") }} · {{ t(otherEdit.kind) }} #{{ otherEdit.id }}</h3>' +
      '<schema-form :key="otherEdit.kind + otherEdit.id" :path="otherEdit.path" :item-id="otherEdit.id" prefix="edit-" @created="editedOther"></schema-form>' +
      '<button type="button" class="secondary" id="activity-edit-close" @click="otherEdit = null">{{ t("cancel") }}</button></div>' +
      '<div v-if="groups" class="card" id="group-fill" style="margin-top:1rem"><h3>{{ t("groups") }} · {{ t("group_buy") }} {{ groups.id }}</h3>' +
      '<table><thead><tr><th>{{ t("id") }}</th><th>{{ t("state") }}</th><th>{{ t("fill") }}</th><th>{{ t("ends_at") }}</th></tr></thead><tbody>' +
      '<tr v-for="g in groups.items" :key="g.id"><td>{{ g.id }}</td><td>{{ g.state }}</td><td><progress :max="g.group_size" :value="g.paid" :aria-label="g.paid + \'/\' + g.group_size"></progress> {{ g.paid }}/{{ g.group_size }}</td><td>{{ when(g.expires_at) }}</td></tr>' +
      '<tr v-if="!groups.items.length"><td colspan="4" class="muted">{{ t("no_rows") }}</td></tr></tbody></table></div>' +
      '<div class="card" style="margin-top:1rem"><h3>{{ t("new_activity") }}</h3>' +
      '<div class="row" role="tablist"><button v-for="k in creators" :key="k.id" type="button" role="tab" :aria-selected="creating === k.id ? \'true\' : \'false\'" :class="creating === k.id ? \'\' : \'secondary\'" :id="\'create-\' + k.id" @click="creating = k.id">{{ t(k.word) }}</button></div>' +
      '<schema-form v-if="creatorPath" :key="creating" :path="creatorPath" :prefix="creating + \'-\'" @created="load"></schema-form>' +
      '<div v-if="creating === \'flash_sale\'">' +
      '<form class="stack" id="sale-form" @submit.prevent="create" novalidate>' +
      '<label v-for="f in inputs" :key="f.key">{{ t(f.word) }}' +
      '<input :id="\'sale-\' + f.key" :type="f.type" v-model="form[f.key]" :aria-invalid="fieldErrors[f.field] ? \'true\' : \'false\'" :aria-describedby="\'sale-\' + f.key + \'-error\'" :step="f.step">' +
      '<span class="field-error" :id="\'sale-\' + f.key + \'-error\'" role="alert">{{ fieldErrors[f.field] || "" }}</span></label>' +
      '<p v-if="editing" class="muted" id="sale-editing">{{ t("editing") }} #{{ editing }}</p>' +
      '<button type="submit" id="sale-submit" :disabled="busy">{{ editing ? t("save") : t("create") }}</button>' +
      '<button v-if="editing" type="button" class="secondary" id="sale-cancel-edit" @click="stopEditing">{{ t("cancel") }}</button></form></div></div>' +
      '</section>',
    computed: {
      creatorPath: function () {
        var self = this;
        return (this.creators.filter(function (k) { return k.id === self.creating; })[0] || {}).path || null;
      },
      inputs: function () {
        return [
          { key: "sku", field: "sku", word: "sku", type: "text" },
          { key: "title", field: "title", word: "title", type: "text" },
          { key: "price", field: "price_fen", word: "price", type: "text" },
          { key: "quantity", field: "quantity", word: "quantity", type: "number", step: 1 },
          { key: "per_user_limit", field: "per_user_limit", word: "per_user_limit", type: "number", step: 1 },
          { key: "starts_at", field: "starts_at", word: "starts_at", type: "datetime-local" },
          { key: "ends_at", field: "ends_at", word: "ends_at", type: "datetime-local" },
        ];
      },
    },
    mounted: function () { this.load(); },
    methods: {
      load: function () {
        var self = this;
        var kinds = [["group_buy", "/group-buys"], ["bargain", "/bargain/activities"], ["coupon", "/coupons/templates"]];
        Promise.all(kinds.map(function (k) { return api.call("GET", k[1]); })).then(function (rs) {
          var out = [];
          rs.forEach(function (r, i) {
            (r.ok && r.body.items || []).forEach(function (a) {
              out.push({ kind: kinds[i][0], id: a.id, title: a.title || a.name || "", sku: a.sku || "",
                         price_fen: a.price_fen != null ? a.price_fen : a.floor_price_fen != null ? a.floor_price_fen : a.amount_off_fen,
                         state: a.state || a.status || "" });
            });
          });
          self.others = out;
        });
        return api.call("GET", "/flash-sales").then(function (r) {
          if (r.ok) self.sales = r.body.items;
          else self.error = self.errorText(r);
        });
      },
      editOther: function (a) {
        var path = (this.creators.filter(function (k) { return k.id === a.kind; })[0] || {}).path;
        this.otherEdit = path ? { kind: a.kind, id: a.id, path: path } : null;
      },
      editedOther: function () { this.load(); },
      showGroups: function (id) {
        var self = this;
        api.call("GET", "/group-buys/" + id + "/groups?limit=50").then(function (r) {
          self.groups = r.ok ? { id: id, items: r.body.items } : null;
          self.error = r.ok ? "" : self.errorText(r);
        });
      },
      /* the form takes the sale's values; saving sends them as a PATCH */
      edit: function (sale) {
        var tz = this.$root.session.timezone;
        this.creating = "flash_sale";
        this.editing = sale.id;
        this.fieldErrors = {};
        this.form = { sku: sale.sku, title: sale.title || "", price: (sale.price_fen / 100).toFixed(2),
                      quantity: String(sale.quantity), per_user_limit: String(sale.per_user_limit),
                      starts_at: epochToZoned(sale.starts_at, tz), ends_at: epochToZoned(sale.ends_at, tz) };
      },
      stopEditing: function () {
        this.editing = null;
        this.fieldErrors = {};
        this.form = { sku: "", title: "", price: "", quantity: "", per_user_limit: "1", starts_at: "", ends_at: "" };
      },
      toggle: function (sale) {
        var self = this;
        self.busy = true;
        api.call("PATCH", "/flash-sales/" + sale.id, { status: sale.status === "active" ? "disabled" : "active" }).then(function (r) {
          self.busy = false;
          self.error = r.ok ? "" : self.errorText(r);
          self.load();
        });
      },
      create: function () {
        var self = this, f = self.form, tz = self.$root.session.timezone, errs = {};
        var body = { sku: f.sku };
        if (f.title) body.title = f.title;
        var fen = toFen(f.price);
        if (fen === null) errs.price_fen = self.$root.lang === "en" ? "an amount of yuan, like 9.90" : "请输入金额，如 9.90";
        else body.price_fen = fen;
        ["quantity", "per_user_limit"].forEach(function (k) { if (f[k] !== "") body[k] = Number(f[k]); });
        ["starts_at", "ends_at"].forEach(function (k) { var e = zonedToEpoch(f[k], tz); if (e !== null) body[k] = e; });
        self.fieldErrors = errs;
        self.error = self.notice = "";
        if (Object.keys(errs).length) return;
        self.busy = true;
        var editing = self.editing;
        if (editing) delete body.sku;  /* a sale keeps its SKU */
        api.call(editing ? "PATCH" : "POST", editing ? "/flash-sales/" + editing : "/flash-sales", body).then(function (r) {
          self.busy = false;
          if (r.ok) {
            self.notice = (editing ? self.t("saved") : self.t("created")) + " #" + r.body.id;
            if (editing) self.stopEditing();
            self.load();
            return;
          }
          var field = r.body.error && r.body.error.details && r.body.error.details.field;
          if (field && SALE_FIELDS.indexOf(field) >= 0) {
            var e = {};
            e[field] = r.message;
            self.fieldErrors = e;
          } else {
            self.error = self.errorText(r);
          }
        });
      },
    },
  });

  /* ---- Members: a profile with what each plugin knows, segments with a live
  ** count, and a coupon sent to a segment */

  Vue.component("page-members", {
    data: function () {
      return { builder: { join: "all", rows: [{ kind: "field", field: "city", op: "eq", value: "杭州", days: "" }] },
               id: "", by: "id", profile: null, facets: {}, list: [], error: "", rule: '{"all":[{"field":"city","op":"eq","value":"杭州"}]}',
               count: null, countError: "", timer: null, segments: [], templates: [], dropSegment: "", dropTemplate: "",
               dropNotice: "", dropError: "" };
    },
    template:
      '<section aria-labelledby="members-title"><h2 id="members-title">{{ t("members") }}</h2>' +
      '<p v-if="error" class="error" role="alert">{{ error }}</p>' +
      '<form class="inline" @submit.prevent="find"><label>{{ t("search_by") }}<select id="member-by" v-model="by">' +
      '<option v-for="b in searchBy" :value="b">{{ t("by_" + b) }}</option></select></label>' +
      '<label>{{ t("by_" + by) }}<input id="member-id" v-model.trim="id" :placeholder="by === \'id\' ? \'m1\' : \'\'"></label>' +
      '<button type="submit" id="member-search">{{ t("search") }}</button></form>' +
      '<div v-if="profile" class="card" id="member-profile" style="margin-top:1rem"><h3>{{ t("profile") }} {{ profile.id }}</h3>' +
      '<p><span v-for="tag in (profile.tags || [])" class="tag">{{ tag }}</span></p>' +
      '<dl class="facets"><template v-for="(v, k) in facets"><dt :key="k + \'-k\'">{{ t("facet_" + k) }}</dt><dd :key="k + \'-v\'" :id="\'member-\' + k">{{ v }}</dd></template></dl>' +
      '<details><summary>JSON</summary><pre>{{ JSON.stringify(profile, null, 1) }}</pre></details></div>' +
      '<p v-if="$root.session.store" class="muted" id="members-scope">{{ t("store_members_note") }}</p>' +
      '<div v-if="!$root.session.store" class="grid2" style="margin-top:1rem"><div class="card"><h3>{{ t("segment_count") }}</h3>' +
      '<fieldset id="segment-builder"><legend>{{ t("segment_builder") }}</legend>' +
      '<label>{{ t("match") }}<select id="builder-join" v-model="builder.join"><option value="all">{{ t("match_all") }}</option><option value="any">{{ t("match_any") }}</option></select></label>' +
      '<div v-for="(r, i) in builder.rows" :key="i" class="row builder-row" :data-row="i">' +
      '<select :id="\'builder-kind-\' + i" v-model="r.kind" :aria-label="t(\'condition\') + \' \' + (i + 1)"><option v-for="k in kinds" :value="k">{{ t("cond_" + k) }}</option></select>' +
      '<template v-if="r.kind === \'field\'"><input :id="\'builder-field-\' + i" v-model.trim="r.field" list="segment-fields" :aria-label="t(\'field\')" placeholder="city">' +
      '<select :id="\'builder-op-\' + i" v-model="r.op" :aria-label="t(\'op\')"><option v-for="o in ops" :value="o">{{ o }}</option></select></template>' +
      '<input v-if="r.op !== \'is_empty\' && r.op !== \'not_empty\' || r.kind !== \'field\'" :id="\'builder-value-\' + i" v-model.trim="r.value" :aria-label="t(\'value\')" :placeholder="hint(r)">' +
      '<input v-if="r.kind === \'field\' || r.kind === \'bought\'" :id="\'builder-days-\' + i" type="number" min="1" v-model="r.days" :aria-label="t(\'within_days\')" :placeholder="t(\'within_days\')">' +
      '<button type="button" class="secondary" @click="builder.rows.splice(i, 1)" :aria-label="t(\'remove\') + \' \' + (i + 1)">−</button></div>' +
      '<datalist id="segment-fields"><option v-for="f in fieldNames" :value="f"></option></datalist>' +
      '<button type="button" class="secondary" id="builder-add" @click="builder.rows.push({ kind: \'field\', field: \'\', op: \'eq\', value: \'\', days: \'\' })">+ {{ t("condition") }}</button></fieldset>' +
      '<label>{{ t("segment_rule") }}<textarea id="segment-rule" rows="4" v-model="rule"></textarea></label>' +
      '<p><button type="button" id="segment-preview" @click="preview">{{ t("preview") }}</button></p>' +
      '<p v-if="countError" class="error" role="alert">{{ countError }}</p>' +
      '<p v-if="count !== null" aria-live="polite">{{ t("count") }}: <strong id="segment-count">{{ count }}</strong></p></div>' +
      '<div class="card"><h3>{{ t("send_coupon") }}</h3><form class="stack" @submit.prevent="drop">' +
      '<label>{{ t("segment") }}<select id="drop-segment" v-model="dropSegment" required><option v-for="g in segments" :value="g.name">{{ g.name }}</option></select></label>' +
      '<label>{{ t("coupon") }}<select id="drop-template" v-model="dropTemplate" required><option v-for="c in templates" :value="c.id">{{ c.name }}</option></select></label>' +
      '<button type="submit" id="drop-submit">{{ t("send") }}</button></form>' +
      '<p v-if="dropNotice" class="notice" role="status" id="drop-notice">{{ dropNotice }}</p><p v-if="dropError" class="error" role="alert">{{ dropError }}</p></div></div>' +
      '<h3>{{ t("members") }}</h3><div class="scroll"><table id="members-table"><thead><tr><th>{{ t("id") }}</th><th>{{ t("tags") }}</th><th>JSON</th></tr></thead><tbody>' +
      '<tr v-for="m in list" :key="m.id"><td><a href="#" @click.prevent="by = \'id\'; id = m.id; find()">{{ m.id }}</a></td><td>{{ (m.tags || []).join(", ") }}</td><td><code>{{ brief(m) }}</code></td></tr>' +
      '<tr v-if="!list.length"><td colspan="3" class="muted">{{ t("no_rows") }}</td></tr></tbody></table></div>' +
      '</section>',
    watch: {
      /* the builder writes the rule (the JSON below stays editable for what it cannot say) */
      builder: { deep: true, handler: function () { this.rule = JSON.stringify(this.built); } },
      rule: function () {  /* the count follows the rule as it is typed */
        clearTimeout(this.timer);
        this.timer = setTimeout(this.preview, 400);
      },
    },
    mounted: function () {
      var self = this;
      api.call("GET", "/members?limit=50" + (self.scope ? "&" + self.scope : "")).then(function (r) {
        if (r.ok) self.list = r.body.items; else self.error = self.errorText(r);
      });
      if (self.scope) return;  /* segments and coupons are the operators' */
      api.call("GET", "/members/segments").then(function (r) { if (r.ok) self.segments = r.body.items; });
      api.call("GET", "/coupons/templates").then(function (r) { if (r.ok) self.templates = r.body.items; });
    },
    beforeDestroy: function () { clearTimeout(this.timer); },
    computed: {
      /* a store manager reads the members its store first brought: its calls name the store */
      scope: function () { var st = this.$root.session.store; return st ? "store=" + encodeURIComponent(st) : ""; },
      kinds: function () { return ["field", "tag", "bought", "rfm", "tier", "segment"]; },
      ops: function () { return ["eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in", "is_empty", "not_empty"]; },
      fieldNames: function () {
        return ["city", "gender", "birthday", "nickname", "joined_at", "paid_fen", "paid_orders", "refunded_fen",
                "last_paid_at", "first_paid_at", "points", "rfm", "tier"];
      },
      /* the builder's rows as a segment rule (plugins/members README) */
      built: function () {
        function val(v) { return v !== "" && !isNaN(Number(v)) ? Number(v) : v; }
        var rows = this.builder.rows.map(function (r) {
          var days = r.days ? Number(r.days) : null;
          if (r.kind === "field") {
            var c = { field: r.field, op: r.op };
            if (r.op === "in" || r.op === "not_in") c.value = r.value.split(",").map(function (x) { return val(x.trim()); });
            else if (r.op === "between") c.value = r.value.split(",").slice(0, 2).map(function (x) { return val(x.trim()); });
            else if (r.op !== "is_empty" && r.op !== "not_empty") c.value = val(r.value);
            if (days) c.within_days = days;
            return c;
          }
          if (r.kind === "bought") {
            var b = { bought: r.value.split(",").map(function (x) { return x.trim(); }).filter(Boolean) };
            if (days) b.within_days = days;
            return b;
          }
          var o = {};
          o[r.kind] = r.value;
          return o;
        });
        var rule = {};
        rule[this.builder.join] = rows;
        return rule;
      },
      /* a member id, or an identity members/lookup finds (a phone by its digest) */
      searchBy: function () { return ["id", "phone", "mp_openid", "unionid", "oa_openid", "wecom_external", "card"]; },
    },
    methods: {
      brief: function (m) { var s = JSON.stringify(m); return s.length > 120 ? s.slice(0, 120) + "…" : s; },
      hint: function (r) {
        return r.kind === "bought" ? "sku-1, sku-2" : r.op === "between" ? "lo, hi" : r.op === "in" || r.op === "not_in" ? "a, b, c" : "";
      },
      find: function () {
        var self = this;
        if (!self.id) return;
        var path = self.by === "id" ? "/members/" + encodeURIComponent(self.id) + (self.scope ? "?" + self.scope : "")
          : "/members/lookup?channel=" + self.by + "&id=" + encodeURIComponent(self.id) + (self.scope ? "&" + self.scope : "");
        api.call("GET", path).then(function (r) {
          self.profile = r.ok ? r.body : null;
          self.error = r.ok ? "" : self.errorText(r);
          if (r.ok) self.facetsOf(r.body.id);
        });
      },
      facetsOf: function (member) {
        var self = this, id = encodeURIComponent(member);
        /* what the other plugins know of her; a plugin the brand lacks is skipped */
        var asks = [["layer", "/rfm/members/" + id, function (b) { return b.layer || "—"; }],
                    ["tier", "/tiers/members/" + id, function (b) { return b.name || b.tier || "—"; }],
                    ["points", "/points/accounts/" + id, function (b) { return b.balance; }],
                    ["orders", "/orders?limit=5&user=" + id + (self.scope ? "&" + self.scope : ""), function (b) {
                      return b.items.map(function (o) { return "#" + o.id + " " + o.status + " " + yuan(o.total_fen); }).join(" · ") || "—"; }],
                    ["first_visit", "/analytics/members/" + id, function (b) {
                      return b.first ? (b.first.source || "") + " " + self.when(b.first.at) : "—"; }]];
        self.facets = {};
        asks.forEach(function (a) {
          api.call("GET", a[1]).then(function (r) {
            if (r.ok) self.$set(self.facets, a[0], a[2](r.body));
          });
        });
      },
      preview: function () {
        var self = this, rule;
        try { rule = JSON.parse(self.rule); } catch (e) { self.countError = String(e); self.count = null; return; }
        api.call("POST", "/members/segments/preview", { rule: rule }).then(function (r) {
          self.count = r.ok ? r.body.count : null;
          self.countError = r.ok ? "" : self.errorText(r);
        });
      },
      drop: function () {
        var self = this;
        self.dropNotice = self.dropError = "";
        api.call("POST", "/coupons/templates/" + self.dropTemplate + "/drops", { segment: self.dropSegment }).then(function (r) {
          if (r.ok) self.dropNotice = self.t("sent") + " #" + (r.body.id || "") + " " + (r.body.state || r.body.status || "");
          else self.dropError = self.errorText(r);
        });
      },
    },
  });

  /* ---- Orders: search, detail, refund */

  Vue.component("page-orders", {
    data: function () {
      return { user: "", status: "", page: null, order: null, error: "", notice: "", reason: "", amount: "", busy: false };
    },
    template:
      '<section aria-labelledby="orders-title"><h2 id="orders-title">{{ t("orders") }}</h2>' +
      '<p v-if="$root.session.store" class="muted" id="store-scope">{{ t("store_orders_note") }}</p>' +
      '<p v-if="error" class="error" role="alert" id="orders-error">{{ error }}</p>' +
      '<p v-if="notice" class="notice" role="status">{{ notice }}</p>' +
      '<form class="inline" @submit.prevent="load"><label>{{ t("filter_user") }}<input id="orders-user" v-model.trim="user"></label>' +
      '<label>{{ t("filter_status") }}<select id="orders-status" v-model="status"><option value="">{{ t("any") }}</option>' +
      '<option v-for="s in [\'pending_payment\',\'paid\',\'completed\',\'cancelled\',\'refunding\',\'refunded\']" :value="s">{{ s }}</option></select></label>' +
      '<button type="submit" id="orders-search">{{ t("search") }}</button></form>' +
      '<div class="scroll" style="margin-top:1rem"><table id="orders-table"><thead><tr><th>{{ t("order_id") }}</th><th>{{ t("filter_user") }}</th><th>{{ t("status") }}</th><th class="num">{{ t("total") }}</th><th>{{ t("at") }}</th><th></th></tr></thead><tbody>' +
      '<tr v-for="o in (page ? page.items : [])" :key="o.id"><td>{{ o.id }}</td><td>{{ o.user }}</td><td>{{ o.status }}</td><td class="num">{{ yuan(o.total_fen) }}</td><td>{{ when(o.created_at) }}</td>' +
      '<td><button class="secondary" @click="open(o.id)" :aria-label="t(\'detail\') + \' \' + o.id">{{ t("detail") }}</button></td></tr>' +
      '<tr v-if="page && !page.items.length"><td colspan="6" class="muted">{{ t("no_rows") }}</td></tr></tbody></table></div>' +
      '<div v-if="order" class="card" id="order-detail" style="margin-top:1rem"><h3>{{ t("order_id") }} {{ order.id }} · {{ order.status }}</h3>' +
      '<p>{{ t("total") }} {{ yuan(order.total_fen) }} · {{ t("paid") }} {{ yuan(order.paid_fen) }} · {{ t("refunded") }} {{ yuan(order.refunded_fen) }}</p>' +
      '<table><thead><tr><th>{{ t("sku") }}</th><th class="num">{{ t("quantity") }}</th><th class="num">{{ t("price") }}</th></tr></thead><tbody>' +
      '<tr v-for="l in (order.lines || [])"><td>{{ l.sku }}</td><td class="num">{{ l.qty }}</td><td class="num">{{ yuan(l.paid_fen) }}</td></tr></tbody></table>' +
      '<form class="inline" @submit.prevent="refund" style="margin-top:.75rem"><label>{{ t("refund_reason") }}<input id="refund-reason" v-model="reason" required></label>' +
      '<label>{{ t("refund_amount") }}<input id="refund-amount" v-model="amount"></label>' +
      '<button type="submit" class="danger" id="refund-submit" :disabled="busy">{{ t("refund") }}</button></form></div>' +
      '</section>',
    mounted: function () { this.load(); },
    computed: {
      /* a store manager's calls name its store: the host admits them only so */
      scope: function () {
        var store = this.$root.session.store;
        return store ? "store=" + encodeURIComponent(store) : "";
      },
    },
    methods: {
      load: function () {
        var self = this, q = "?limit=50" + (self.user ? "&user=" + encodeURIComponent(self.user) : "") +
          (self.status ? "&status=" + self.status : "") + (self.scope ? "&" + self.scope : "");
        api.call("GET", "/orders" + q).then(function (r) {
          self.page = r.ok ? r.body : null;
          self.error = r.ok ? "" : self.errorText(r);
        });
      },
      open: function (id) {
        var self = this;
        api.call("GET", "/orders/" + id + (self.scope ? "?" + self.scope : "")).then(function (r) {
          self.order = r.ok ? r.body : null;
          self.error = r.ok ? "" : self.errorText(r);
        });
      },
      refund: function () {
        var self = this, body = { reason: self.reason };
        if (self.amount) {
          var fen = toFen(self.amount);
          if (fen === null) { self.error = "amount_fen: " + self.amount; return; }
          body.amount_fen = fen;
        }
        self.busy = true;
        api.call("POST", "/orders/" + self.order.id + "/refund" + (self.scope ? "?" + self.scope : ""), body).then(function (r) {
          self.busy = false;
          self.error = r.ok ? "" : self.errorText(r);
          if (r.ok) { self.notice = self.t("refund") + " " + (r.body.refund.no || r.body.refund.id || ""); self.order = r.body.order; self.load(); }
        });
      },
    },
  });

  /* ---- Reports: the analytics reports over a period, each with its CSV */

  Vue.component("page-reports", {
    data: function () {
      var tz = this.$root.session.timezone, to = localDate(tz),
          from = localDate(tz, new Date(Date.now() - 6 * 86400000));
      return { from: from, to: to, overview: null, funnel: null, sources: null, products: null, campaigns: null,
               campaignsBy: "activity", cohorts: null, error: "", chart: null };
    },
    computed: {
      csv: function () {
        var base = "/admin/" + encodeURIComponent(api.tenant) + "/analytics/", q = "?from=" + this.from + "&to=" + this.to + "&format=csv";
        return { overview: base + "overview" + q, funnel: base + "funnel" + q, sources: base + "sources" + q,
                 products: base + "products" + q, campaigns: base + "campaigns" + q + "&by=" + this.campaignsBy,
                 retention: base + "retention" + q };
      },
    },
    template:
      '<section aria-labelledby="reports-title"><h2 id="reports-title">{{ t("reports") }}</h2>' +
      '<form class="inline" @submit.prevent="load"><label>{{ t("from") }}<input type="date" id="reports-from" v-model="from"></label>' +
      '<label>{{ t("to") }}<input type="date" id="reports-to" v-model="to"></label><button type="submit" id="reports-show">{{ t("show") }}</button></form>' +
      '<p v-if="error" class="error" role="alert">{{ error }}</p>' +
      '<div v-if="overview" class="figures" style="margin-top:1rem" id="reports-overview">' +
      '<div class="figure" v-for="k in [\'gmv_fen\', \'orders\', \'payers\', \'uv\', \'conversion\', \'per_payer_fen\']" :key="k">' +
      '<div class="label">{{ t("fig_" + k) }}</div><div class="value">{{ fig(k, overview.total[k]) }}</div>' +
      '<div class="muted" v-if="overview.change[k] !== undefined">{{ overview.change[k] >= 0 ? "▲" : "▼" }} {{ percent(Math.abs(overview.change[k])) }}</div></div></div>' +
      '<p class="muted" v-if="overview">GMV = UV × {{ t("conversion") }} × {{ t("fig_per_payer_fen") }} · <a :href="csv.overview" download>CSV</a></p>' +
      '<div class="grid2"><div class="card"><h3>{{ t("funnel") }} <a :href="csv.funnel" download class="muted">CSV</a></h3><div class="chart-box"><canvas id="reports-funnel" role="img" :aria-label="t(\'funnel\')"></canvas></div></div>' +
      '<div class="card"><h3>{{ t("sources_title") }} <a :href="csv.sources" download class="muted">CSV</a></h3><table id="reports-sources"><thead><tr><th>{{ t("source_key") }}</th><th class="num">{{ t("uv") }}</th><th class="num">{{ t("orders_paid") }}</th><th class="num">{{ t("gmv") }}</th></tr></thead><tbody>' +
      '<tr v-for="r in (sources ? sources.items : [])" :key="r.key || \'none\'"><td>{{ r.key || t("none") }}</td><td class="num">{{ r.visitors }}</td><td class="num">{{ r.orders }}</td><td class="num">{{ yuan(r.gmv_fen) }}</td></tr></tbody></table></div></div>' +
      '<div class="card"><h3>{{ t("products_title") }} <a :href="csv.products" download class="muted">CSV</a> · <a :href="csv.campaigns" download class="muted">{{ t("campaigns") }} CSV</a></h3><div class="scroll"><table id="reports-products"><thead><tr><th>{{ t("product") }}</th><th class="num">{{ t("views") }}</th><th class="num">{{ t("buyers") }}</th><th class="num">{{ t("units") }}</th><th class="num">{{ t("gmv") }}</th></tr></thead><tbody>' +
      '<tr v-for="p in (products ? products.items : [])" :key="p.product"><td>{{ p.product }}</td><td class="num">{{ p.views }}</td><td class="num">{{ p.buyers }}</td><td class="num">{{ p.units }}</td><td class="num">{{ yuan(p.gmv_fen) }}</td></tr></tbody></table></div></div>' +
      '<div class="grid2"><div class="card"><h3>{{ t("campaigns") }} <a :href="csv.campaigns" download class="muted">CSV</a></h3>' +
      '<label>{{ t("show") }} <select id="reports-campaigns-by" v-model="campaignsBy" @change="loadCampaigns"><option value="activity">{{ t("per_activity") }}</option><option value="script">{{ t("per_script") }}</option></select></label>' +
      '<div class="scroll"><table id="reports-campaigns"><thead><tr><th>{{ campaignsBy === "script" ? t("campaign_script") : t("activity") }}</th><th class="num">{{ t("participants") }}</th><th class="num">{{ t("orders_paid") }}</th><th class="num">{{ t("gmv") }}</th><th class="num">{{ t("cost") }}</th><th class="num">ROI</th></tr></thead><tbody>' +
      '<tr v-for="c in (campaigns ? campaigns.items : [])" :key="c.campaign" :data-campaign="c.campaign"><td>{{ c.campaign }}<span v-if="c.title" class="muted"> {{ c.title }}</span><div v-if="c.activities" class="muted">{{ c.activities.join(" · ") }}</div></td><td class="num">{{ c.participants }}</td><td class="num">{{ c.orders }}</td><td class="num">{{ yuan(c.gmv_fen) }}</td><td class="num">{{ yuan(c.campaign_fen + c.coupon_fen) }}</td><td class="num">{{ c.roi == null ? "—" : c.roi.toFixed(1) }}</td></tr></tbody></table></div></div>' +
      '<div class="card"><h3>{{ t("cohorts") }} <a :href="csv.retention" download class="muted">CSV</a></h3><table id="reports-cohorts"><thead><tr><th>{{ t("first_purchase") }}</th><th class="num">{{ t("members") }}</th><th class="num">30d</th><th class="num">60d</th><th class="num">90d</th></tr></thead><tbody>' +
      '<tr v-for="c in (cohorts ? cohorts.cohorts : [])" :key="c.month"><td>{{ c.month }}</td><td class="num">{{ c.members }}</td><td class="num" v-for="w in [30, 60, 90]" :key="w">{{ percent(c[\'rate_\' + w]) }}<span v-if="c[\'open_\' + w]" class="muted">*</span></td></tr></tbody></table></div></div>' +
      '</section>',
    mounted: function () { this.load(); },
    beforeDestroy: function () { if (this.chart) this.chart.destroy(); },
    methods: {
      fig: function (k, v) { return k.slice(-4) === "_fen" ? yuan(v) : k === "conversion" ? percent(v) : v; },
      load: function () {
        var self = this, q = "?from=" + self.from + "&to=" + self.to;
        Promise.all(["overview", "funnel", "sources", "products", "campaigns", "retention"].map(function (r) {
          return api.call("GET", "/analytics/" + r + q + (r === "campaigns" ? "&by=" + self.campaignsBy : ""));
        })).then(function (rs) {
          var bad = rs.filter(function (r) { return !r.ok; })[0];
          self.error = bad ? self.errorText(bad) : "";
          self.overview = rs[0].ok ? rs[0].body : null;
          self.funnel = rs[1].ok ? rs[1].body : null;
          self.sources = rs[2].ok ? rs[2].body : null;
          self.products = rs[3].ok ? rs[3].body : null;
          self.campaigns = rs[4].ok ? rs[4].body : null;
          self.cohorts = rs[5].ok ? rs[5].body : null;
          self.$nextTick(self.draw);
        });
      },
      /* the campaigns card alone, per activity or per campaign script */
      loadCampaigns: function () {
        var self = this, by = self.campaignsBy;
        api.call("GET", "/analytics/campaigns?from=" + self.from + "&to=" + self.to + "&by=" + by).then(function (r) {
          if (by !== self.campaignsBy) return;  /* switched again meanwhile */
          self.campaigns = r.ok ? r.body : null;
          self.error = r.ok ? "" : self.errorText(r);
        });
      },
      draw: function () {
        var el = document.getElementById("reports-funnel");
        if (!this.funnel || !el || !window.Chart) return;
        var steps = this.funnel.steps || [];
        if (this.chart) this.chart.destroy();
        this.chart = new Chart(el, {
          type: "bar",
          data: { labels: steps.map(function (x) { return x.step; }),
                  datasets: [{ label: this.t("uv"), data: steps.map(function (x) { return x.visitors; }), backgroundColor: "#0b6e6e" }] },
          options: { indexAxis: "y", responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { display: false } } },
        });
      },
    },
  });

  /* ---- Stores and guides: referral's performance, a store manager's own store only */

  Vue.component("page-stores", {
    data: function () {
      var tz = this.$root.session.timezone;
      return { from: localDate(tz, new Date(Date.now() - 29 * 86400000)), to: localDate(tz), all: null, one: null, error: "" };
    },
    template:
      '<section aria-labelledby="stores-title"><h2 id="stores-title">{{ t("stores") }}</h2>' +
      '<form class="inline" @submit.prevent="load"><label>{{ t("from") }}<input type="date" id="stores-from" v-model="from"></label>' +
      '<label>{{ t("to") }}<input type="date" id="stores-to" v-model="to"></label><button type="submit">{{ t("show") }}</button></form>' +
      '<p v-if="error" class="error" role="alert">{{ error }}</p>' +
      '<div v-if="all" class="scroll" style="margin-top:1rem"><table id="stores-table"><thead><tr><th>{{ t("store_scope") }}</th><th class="num">{{ t("orders_paid") }}</th><th class="num">{{ t("sales") }}</th><th class="num">{{ t("commission") }}</th><th></th></tr></thead><tbody>' +
      '<tr v-for="r in all.items" :key="r.store"><td>{{ r.name }} ({{ r.store }})</td><td class="num">{{ r.orders }}</td><td class="num">{{ yuan(r.sales_fen) }}</td><td class="num">{{ yuan(r.commission_fen) }}</td>' +
      '<td><button class="secondary" @click="open(r.store)" :aria-label="t(\'guide\') + \' \' + r.store">{{ t("guide") }}</button></td></tr></tbody></table></div>' +
      '<div v-if="one" class="card" style="margin-top:1rem" id="store-detail"><h3>{{ one.store }}</h3>' +
      '<p>{{ t("orders_paid") }} <strong>{{ one.orders }}</strong> · {{ t("sales") }} <strong>{{ yuan(one.sales_fen) }}</strong> · {{ t("commission") }} {{ yuan(one.commission_fen) }}</p>' +
      '<table><thead><tr><th>{{ t("guide") }}</th><th class="num">{{ t("orders_paid") }}</th><th class="num">{{ t("sales") }}</th><th class="num">{{ t("commission") }}</th></tr></thead><tbody>' +
      '<tr v-for="g in one.guides" :key="g.guide"><td>{{ g.guide }}</td><td class="num">{{ g.orders }}</td><td class="num">{{ yuan(g.sales_fen) }}</td><td class="num">{{ yuan(g.commission_fen) }}</td></tr></tbody></table></div>' +
      '</section>',
    mounted: function () { this.load(); },
    methods: {
      /* referral's periods are UTC epoch seconds: the brand's local days, whole */
      period: function () {
        var tz = this.$root.session.timezone;
        return "?from=" + zonedToEpoch(this.from + "T00:00", tz) + "&to=" + (zonedToEpoch(this.to + "T00:00", tz) + 86400);
      },
      load: function () {
        var self = this, store = self.$root.session.store;
        if (store) { self.open(store); return; }
        api.call("GET", "/referral/performance" + self.period()).then(function (r) {
          self.all = r.ok ? r.body : null;
          self.error = r.ok ? "" : self.errorText(r);
        });
      },
      open: function (store) {
        var self = this;
        api.call("GET", "/referral/stores/" + encodeURIComponent(store) + "/performance" + self.period()).then(function (r) {
          self.one = r.ok ? r.body : null;
          self.error = r.ok ? "" : self.errorText(r);
        });
      },
    },
  });

  /* ---- the shell */

  new Vue({
    el: "#app",
    data: {
      lang: localStorage.getItem("tp.lang") || "zh",
      session: null,
      notice: "",
      page: (location.hash || "#today").slice(1),
      ready: false,
    },
    computed: {
      pages: function () {
        var self = this;
        return PAGES.filter(function (p) { return self.can(p.id); });
      },
    },
    template:
      '<div v-if="!ready" class="loading">{{ t("loading") }}</div>' +
      '<sign-in v-else-if="!session" :notice="notice" @signed-in="signedIn"></sign-in>' +
      '<div v-else><header class="top"><h1>{{ t("app") }} · {{ session.tenant }}</h1>' +
      '<div class="who"><span id="who">{{ session.user }} · {{ t("role_" + session.role) }}<template v-if="session.store"> · {{ session.store }}</template></span>' +
      '<button @click="toggleLang" id="lang-toggle" :lang="lang === \'zh\' ? \'en\' : \'zh\'">{{ t("lang_toggle") }}</button>' +
      '<button @click="signOut" id="sign-out">{{ t("sign_out") }}</button></div></header>' +
      '<nav class="pages" :aria-label="t(\'app\')"><a v-for="p in pages" :key="p.id" :href="\'#\' + p.id" :id="\'nav-\' + p.id" :class="{ active: page === p.id }" :aria-current="page === p.id ? \'page\' : null">{{ t(p.id) }}</a></nav>' +
      '<main :key="page">' +
      '<p v-if="!can(page)" class="error" id="page-forbidden">{{ t("forbidden") }}</p>' +
      '<component v-else :is="\'page-\' + page"></component></main></div>',
    created: function () {
      var self = this;
      document.documentElement.lang = self.lang === "en" ? "en" : "zh-CN";
      window.addEventListener("hashchange", function () { self.page = (location.hash || "#today").slice(1); });
      api.expired = function () {
        if (!self.session) return;
        self.session = null;
        self.notice = self.t("session_ended");
      };
      api.tenant = new URLSearchParams(location.search).get("tenant") || localStorage.getItem("tp.tenant");
      if (!api.tenant) { self.ready = true; return; }
      api.session("GET").then(function (r) {
        if (r.ok) self.signedIn(r.body);
        self.ready = true;
      }, function () { self.ready = true; });
    },
    methods: {
      can: function (page) {
        var p = PAGES.filter(function (x) { return x.id === page; })[0];
        return !!(p && this.session && p.roles.indexOf(this.session.role) >= 0);
      },
      signedIn: function (s) {
        api.tenant = s.tenant;
        api.csrf = s.csrf;
        this.notice = "";
        this.session = s;
        if (!this.can(this.page) && this.pages.length) location.hash = "#" + this.pages[0].id;
      },
      signOut: function () {
        var self = this;
        api.session("DELETE").then(function () { self.session = null; api.csrf = null; });
      },
      toggleLang: function () {
        this.lang = this.lang === "zh" ? "en" : "zh";
        localStorage.setItem("tp.lang", this.lang);
        document.documentElement.lang = this.lang === "en" ? "en" : "zh-CN";
      },
    },
  });
})();
