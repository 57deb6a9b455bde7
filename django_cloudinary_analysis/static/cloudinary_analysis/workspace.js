/* The review workspace: one item at a time, keyboard first.
 *
 * Without this script every item is shown with its own form and buttons;
 * with it, J/K move, A approves, R focuses the note (Enter rejects), S skips,
 * U undoes the last decision within the window, V reveals a blurred image,
 * X selects for a bulk decision, ? opens the help. Decisions are posted to
 * the same endpoints as the forms, asking for JSON.
 */
(function () {
    "use strict";
    const root = document.querySelector(".dca-workspace");
    if (!root) {
        return;
    }
    root.classList.add("dca-js");
    const items = Array.from(root.querySelectorAll(".dca-item"));
    const status = document.getElementById("dca-status");
    const help = document.getElementById("dca-help");
    const canReview = root.dataset.canReview === "1";
    const undoMs = Number(root.dataset.undoSeconds || 0) * 1000;
    let index = 0;
    // The last decision survives the reload that fetches the next items.
    const LAST = "dca-workspace-last";

    function remember(value) {
        if (value) {
            window.sessionStorage.setItem(LAST, JSON.stringify(value));
        } else {
            window.sessionStorage.removeItem(LAST);
        }
    }
    function recall() {
        try {
            return JSON.parse(window.sessionStorage.getItem(LAST) || "null");
        } catch (error) {
            return null;
        }
    }

    function say(text) {
        status.textContent = text || "";
    }
    function open(item) {
        return !item.classList.contains("dca-decided");
    }
    function show(i) {
        if (!items.length) {
            return;
        }
        index = (i + items.length) % items.length;
        items.forEach(function (el, n) {
            el.classList.toggle("dca-current", n === index);
        });
        items[index].focus();
    }
    function move(step) {
        if (!items.some(open)) {
            say(root.dataset.doneText);
            window.location.assign(root.dataset.next); // claims the next items
            return;
        }
        let i = index;
        for (let n = 0; n < items.length; n += 1) {
            i = (i + step + items.length) % items.length;
            if (open(items[i])) {
                break;
            }
        }
        show(i);
    }
    function csrf() {
        return root.dataset.csrf || "";
    }
    async function post(url, data) {
        const response = await fetch(url, {
            method: "POST",
            body: new URLSearchParams(data),
            headers: {"Accept": "application/json", "X-CSRFToken": csrf()},
            credentials: "same-origin"
        });
        let body = {};
        try {
            body = await response.json();
        } catch (error) {
            body = {};
        }
        return {ok: response.ok && body.ok, body: body};
    }
    async function decide(verdict) {
        const item = items[index];
        if (!item || !open(item) || item.dataset.busy) {
            return;
        }
        const note = item.querySelector("textarea[name=note]");
        item.dataset.busy = "1";
        const result = await post(root.dataset.decideUrl, {
            key: item.dataset.key,
            verdict: verdict,
            note: note ? note.value : ""
        });
        delete item.dataset.busy;
        say(result.body.message || root.dataset.errorText);
        if (!result.ok) {
            return;
        }
        item.classList.add("dca-decided");
        remember({key: item.dataset.key, decision: result.body.decision, at: Date.now()});
        move(1);
    }
    async function undo() {
        const last = recall();
        if (!last || Date.now() - last.at > undoMs) {
            say(root.dataset.noUndoText);
            return;
        }
        remember(null);
        const result = await post(root.dataset.undoUrl, {
            key: last.key,
            decision: last.decision
        });
        say(result.body.message || root.dataset.errorText);
        if (!result.ok) {
            return;
        }
        const item = items.find(function (el) {
            return el.dataset.key === last.key;
        });
        if (item) {
            item.classList.remove("dca-decided");
            show(items.indexOf(item));
        } else {
            window.location.assign(root.dataset.next); // the item is claimed again
        }
    }
    function current(selector) {
        return items[index] ? items[index].querySelector(selector) : null;
    }
    function toggle(selector) {
        const box = current(selector);
        if (box) {
            box.checked = !box.checked;
        }
    }

    document.addEventListener("keydown", function (event) {
        if (event.ctrlKey || event.metaKey || event.altKey) {
            return;
        }
        const target = event.target;
        if (target.matches && target.matches("textarea, input[type=text], select")) {
            if (target.name === "note" && target.dataset.rejecting && event.key === "Enter" && !event.shiftKey) {
                event.preventDefault();
                delete target.dataset.rejecting;
                decide("reject");
            } else if (event.key === "Escape") {
                delete target.dataset.rejecting;
                items[index].focus();
            }
            return;
        }
        if (help.open && event.key !== "?") {
            return;
        }
        const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
        if (key === "u" && canReview) {
            undo();
        } else if (key === "?") {
            if (help.open) {
                help.close();
            } else {
                help.showModal();
            }
        } else if (!items.length) {
            return;
        } else if (key === "j" || key === "ArrowDown" || key === "ArrowRight" || key === "s") {
            move(1);
        } else if (key === "k" || key === "ArrowUp" || key === "ArrowLeft") {
            move(-1);
        } else if (key === "a" && canReview) {
            decide("approve");
        } else if (key === "r" && canReview) {
            const note = current("textarea[name=note]");
            note.dataset.rejecting = "1";
            note.focus();
            say(root.dataset.rejectHint);
        } else if (key === "v") {
            toggle(".dca-reveal-toggle");
        } else if (key === "x" && canReview) {
            toggle("input[name=keys]");
        } else {
            return;
        }
        event.preventDefault();
    });

    root.addEventListener("submit", function (event) {
        const form = event.target;
        if (!form.classList.contains("dca-decide")) {
            return;
        }
        event.preventDefault();
        index = items.indexOf(form.closest(".dca-item"));
        decide(event.submitter ? event.submitter.value : "approve");
    });
    root.addEventListener("click", function (event) {
        const skip = event.target.closest(".dca-skip");
        if (skip) {
            event.preventDefault();
            index = items.indexOf(skip.closest(".dca-item"));
            move(1);
        }
    });
    show(0);
}());
