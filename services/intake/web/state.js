/* What the page's modules share: the choices intake accepts, as GET /v1/form answered
 * them, and the names the page gives to what the request holds. Any other state lives
 * in the one module that changes it. */

export const PARTNER_DEFAULT = 'partner-default';
export const LICENSE_NAMES = { MDR_CORE: 'MDR Core', MDR_COMPLETE: 'MDR Complete', MDR_CLOUD: 'MDR Cloud' };

// The choices; form.js replaces them with GET /v1/form's answer (takeOptions), and the
// importers read them through this live binding.
export let options = { licenses: [], hosting_regions: [], appliance_skus: [], virtual_recommended_below: 10,
                       max_appliances: 50 };

export function takeOptions(answer) {
  options = answer;
}
