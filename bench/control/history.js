/** bench:control part "history": not written yet (issue 13). */
'use strict';
async function run() {
  throw new Error('the history part is not written yet');
}
module.exports = { run };
