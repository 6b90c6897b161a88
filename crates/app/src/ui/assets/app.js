// failover-notify dashboard: small conveniences only; every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Windows: offer the browser's own zone beside the zone field.
  const zone = document.querySelector("input[data-my-zone]");
  const mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && mine && zone.value !== mine) {
    const a = document.createElement("a");
    const url = new URL(window.location.href);
    url.searchParams.set("zone", mine);
    a.href = url.pathname + url.search;
    a.textContent = "my zone (" + mine + ")";
    a.className = "my-zone";
    zone.closest("label").after(a);
  }
  // Maintenance: typing an end time chooses "until…" instead of a preset length.
  const end = document.getElementById("end");
  if (end) {
    end.addEventListener("input", () => {
      const until = document.querySelector("input[name=preset][value='']");
      if (end.value && until) until.checked = true;
    });
  }
});
