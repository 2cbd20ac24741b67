/** bench:control part "fleet": not written yet (issue 13). */
'use strict';
async function run() {
  throw new Error('the fleet part is not written yet');
}
module.exports = { run };
