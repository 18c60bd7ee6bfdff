// Inside the portal's iframe: let BX24 size the frame to the page.
if (window.BX24) { BX24.init(function () { BX24.fitWindow(); }); }
