/** bench:control part "reaction": not written yet (issue 13). */
'use strict';
async function run() {
  throw new Error('the reaction part is not written yet');
}
module.exports = { run };
