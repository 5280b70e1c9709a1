// The start page: shows one of the five illustrations, chosen at random on each visit.

const ILLUSTRATIONS = 5;

const picture = document.getElementById("illustration");
if (picture) {
  const choice = 1 + Math.floor(Math.random() * ILLUSTRATIONS);
  picture.src = `img/${choice}.svg`;
  picture.dataset.choice = String(choice);
}
