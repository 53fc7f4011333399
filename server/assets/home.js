// The home page: an event id takes you to its waiting room.
import { $ } from '/assets/common.js';

$('#choose').addEventListener('submit', (e) => {
  e.preventDefault();
  const id = $('#event-id').value.trim();
  location.assign(`/events/${encodeURIComponent(id)}`);
});
