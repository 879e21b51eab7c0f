/* "My accounts" or "My team's accounts" for a team lead (GET /v1/me lists the teams led).
 *
 * The choice is kept in local storage as healthstream.view; app.js sends it as
 * ?view= on every API call and on the stream, so the server does the scoping.
 */
(() => {
  "use strict";

  const VIEW_STORAGE = "healthstream.view";

  function render(me) {
    const old = document.getElementById("view-scope");
    if (old) old.remove();
    if (!me || !me.csm || !(me.leads || []).length) return;
    const current = localStorage.getItem(VIEW_STORAGE) || "team";
    const label = document.createElement("label");
    label.className = "view-scope";
    label.id = "view-scope";
    label.textContent = "Show ";
    const select = document.createElement("select");
    select.id = "view-scope-select";
    select.setAttribute("aria-label", "Whose accounts to show");
    for (const [value, text] of [
      ["mine", "accounts I own"],
      ["team", `my team's accounts (${me.leads.join(", ")})`],
    ]) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = text;
      option.selected = value === current;
      select.append(option);
    }
    select.addEventListener("change", () => {
      localStorage.setItem(VIEW_STORAGE, select.value);
      if (window.healthstreamReload) window.healthstreamReload();
    });
    label.append(select);
    const anchor = document.getElementById("whoami");
    if (anchor) anchor.after(label);
  }

  document.addEventListener("healthstream:identity", (event) => render(event.detail));
})();
