// Strength feedback on the sign-up form as the user types. The server judges (zxcvbn and the
// same rules the form is checked against); this only shows the verdict.
(function () {
  const input = document.querySelector('input[data-strength]');
  const out = document.getElementById('strength');
  if (!input || !out) return;
  const labels = ['Very weak', 'Weak', 'Fair', 'Strong', 'Very strong'];
  let timer = null;
  input.addEventListener('input', function () {
    clearTimeout(timer);
    if (!input.value) { out.textContent = ''; return; }
    timer = setTimeout(async function () {
      const email = document.querySelector('input[name=email]');
      try {
        const r = await fetch('/signup/strength', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ password: input.value, email: email ? email.value : '' }),
        });
        if (!r.ok) return;
        const s = await r.json();
        const advice = s.problems.length ? s.problems.join('; ') : (s.warning || s.suggestions.join(' '));
        out.textContent = labels[s.score] + (advice ? ': ' + advice : '');
        out.dataset.score = String(s.score);
        out.dataset.acceptable = String(s.acceptable);
      } catch (e) { /* feedback is a help, never a gate */ }
    }, 250);
  });
})();
